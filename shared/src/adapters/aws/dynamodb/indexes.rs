//! The permission index and sweep journal beside the runs.

use super::*;

#[async_trait]
impl StoreIndexes for DynamoRunStore {
    fn permission_index(&self) -> Option<&dyn crate::ports::PermissionIndex> {
        Some(&self.index)
    }

    fn sweep_journal(&self) -> Option<&dyn crate::ports::SweepJournal> {
        Some(&self.index)
    }
}
