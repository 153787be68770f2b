//! The permission index and sweep journal in the same file.

use super::*;

#[async_trait]
impl StoreIndexes for SqliteRunStore {
    fn permission_index(&self) -> Option<&dyn crate::ports::PermissionIndex> {
        Some(self)
    }

    fn sweep_journal(&self) -> Option<&dyn crate::ports::SweepJournal> {
        Some(self)
    }
}
