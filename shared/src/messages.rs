//! The one message type that chains the steps. Messages carry item ids, not item bodies: the
//! items live in the run store.

use crate::model::{ItemId, PermissionType, RunId};
use serde::{Deserialize, Serialize};

pub const MESSAGE_VERSION: u8 = 1;

/// `{"v":1,"run_id":"..","kind":"remove",...}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMessage {
    pub v: u8,
    pub run_id: RunId,
    #[serde(flatten)]
    pub step: Step,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    Discover,
    Remove(RemovalBatch),
    Verify,
}

/// One permission type on at most ten mailboxes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalBatch {
    pub batch_id: u32,
    pub permission: PermissionType,
    pub item_ids: Vec<ItemId>,
}

impl StepMessage {
    pub fn new(run_id: RunId, step: Step) -> StepMessage {
        StepMessage {
            v: MESSAGE_VERSION,
            run_id,
            step,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.step {
            Step::Discover => "discover",
            Step::Remove(_) => "remove",
            Step::Verify => "verify",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_flat_and_versioned() {
        let m = StepMessage::new(
            RunId("r1".into()),
            Step::Remove(RemovalBatch {
                batch_id: 2,
                permission: PermissionType::SendAs,
                item_ids: vec![3, 4],
            }),
        );
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"v":1,"run_id":"r1","kind":"remove","batch_id":2,"permission":"send_as","item_ids":[3,4]})
        );
        assert_eq!(serde_json::from_value::<StepMessage>(v).unwrap(), m);
    }
}
