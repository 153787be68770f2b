//! The messages that chain the steps, and the scheduled jobs. Step messages carry item ids and
//! mailbox identities, not item bodies: the items live in the run store.

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
    /// Validate the user, read the tenant-wide lookups, cut the mailboxes into shards.
    Discover,
    /// Read one shard of mailboxes (discovery function).
    Scan(ScanShard),
    Remove(RemovalBatch),
    /// Contain the victim's own mailbox (removal function): clear forwarding, disable the
    /// rules that forward, redirect or delete, remove recent delegates when asked; on a
    /// restore run, put them back. Counted as removal batch `batch_id`.
    Victim(VictimBatch),
    /// Re-read, report, notify; after a deadline, the same message again (what was read is
    /// saved with the run).
    Verify,
}

/// A share of the tenant's mailboxes for discovery's per-mailbox reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanShard {
    /// 1.. (0 is the tenant-wide part discovery does itself).
    pub shard_id: u32,
    /// The mailboxes still to read; a continuation carries only those not yet read.
    pub mailboxes: Vec<ShardMailbox>,
}

/// Most bytes of mailboxes one scan shard message carries: well inside the 256 KiB an SQS
/// message (and a batch of them) may hold.
pub const SHARD_MESSAGE_BYTES: usize = 192 * 1024;
/// The most mailboxes one discovery shard holds (whatever its message's size).
pub const MAX_SHARD_MAILBOXES: usize = 1000;

impl ScanShard {
    /// Cuts `mailboxes` into shards numbered from 1 of at most `size` mailboxes and
    /// [`SHARD_MESSAGE_BYTES`] each, every mailbox numbered by its place in its shard.
    pub fn cut(mailboxes: Vec<ShardMailbox>, size: usize) -> Vec<ScanShard> {
        let size = size.max(1);
        let mut shards: Vec<ScanShard> = Vec::new();
        let mut bytes = 0;
        for mut m in mailboxes {
            // The JSON of one mailbox: its strings and the keys around them.
            let len = m.upn.len()
                + m.address.len()
                + m.display_name.len()
                + m.recipient_type.len()
                + m.folders.iter().map(|f| f.len() + 8).sum::<usize>()
                + 90;
            let open = shards
                .last()
                .is_some_and(|s| s.mailboxes.len() < size && bytes + len <= SHARD_MESSAGE_BYTES);
            if !open {
                shards.push(ScanShard {
                    shard_id: shards.len() as u32 + 1,
                    mailboxes: Vec::new(),
                });
                bytes = 0;
            }
            let shard = shards.last_mut().expect("a shard was just opened");
            m.position = shard.mailboxes.len() as u32;
            bytes += len;
            shard.mailboxes.push(m);
        }
        shards
    }
}

/// One mailbox of a shard, with its place in the shard (which fixes its items' ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMailbox {
    pub position: u32,
    pub upn: String,
    pub address: String,
    pub display_name: String,
    pub recipient_type: String,
    /// The per-mailbox types still to read, when a continuation read the others already;
    /// absent: every per-mailbox type of the run's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rights: Option<Vec<PermissionType>>,
    /// Folders to read for folder permissions beside the run's (those the permission index
    /// lists for the user on this mailbox), as the permission cmdlets name them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<String>,
}

/// One permission type on at most [`crate::work::REMOVAL_BATCH_MAILBOXES`] mailboxes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalBatch {
    pub batch_id: u32,
    pub permission: PermissionType,
    pub item_ids: Vec<ItemId>,
}

/// The victim-mailbox step: the last of the run's removal batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VictimBatch {
    pub batch_id: u32,
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
            Step::Scan(_) => "scan",
            Step::Remove(_) => "remove",
            Step::Victim(_) => "victim",
            Step::Verify => "verify",
        }
    }
}

/// `{"v":1,"kind":"scheduled","job":"sweep"}`: what the product's one schedule (an
/// EventBridge rule or schedule) delivers to the discovery function. Per-company jobs carry
/// `"company_id"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledMessage {
    pub v: u8,
    pub kind: ScheduledKind,
    pub job: ScheduledJob,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    /// The `review` job: also list users who have not signed in for this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduledKind {
    Scheduled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduledJob {
    /// Find runs whose step stalled (its holder died) and re-drive or fail them.
    Sweep,
    /// Take a permission-index snapshot of the company `company_id` names (one invocation of
    /// the discovery function, bounded by its timeout).
    Index,
    /// Read the company's (`company_id`) new Defender XDR alerts and Entra ID Protection risky
    /// users and start a contain run per compromised user.
    PollAlerts,
    /// Review the company's (`company_id`) newest snapshot and send the digest: one ticket
    /// note and one email (`inactive_days`: also users who have not signed in for that long).
    Review,
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

    #[test]
    fn the_victim_step_reads_as_its_sample_event_carries_it() {
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../events/sqs-victim.json")).unwrap();
        let body = sample["Records"][0]["body"].as_str().unwrap();
        let m: StepMessage = serde_json::from_str(body).unwrap();
        assert_eq!(m.step, Step::Victim(VictimBatch { batch_id: 4 }));
        assert_eq!(m.kind(), "victim");
    }

    #[test]
    fn the_scheduled_sweep_reads_as_documented() {
        let m: ScheduledMessage =
            serde_json::from_str(r#"{"v":1,"kind":"scheduled","job":"sweep"}"#).unwrap();
        assert_eq!(m.job, ScheduledJob::Sweep);
        let m: ScheduledMessage = serde_json::from_str(
            r#"{"v":1,"kind":"scheduled","job":"poll_alerts","company_id":"acme"}"#,
        )
        .unwrap();
        assert_eq!(m.job, ScheduledJob::PollAlerts);
        assert_eq!(m.company_id.as_deref(), Some("acme"));
    }

    #[test]
    fn the_scheduled_index_sweep_names_its_company() {
        let m: ScheduledMessage =
            serde_json::from_str(include_str!("../../events/scheduled-index.json")).unwrap();
        assert_eq!(m.job, ScheduledJob::Index);
        assert_eq!(m.company_id.as_deref(), Some("acme"));
    }

    #[test]
    fn the_scheduled_review_names_its_company_and_how_long_is_inactive() {
        let m: ScheduledMessage =
            serde_json::from_str(include_str!("../../events/scheduled-review.json")).unwrap();
        assert_eq!(m.job, ScheduledJob::Review);
        assert_eq!(m.company_id.as_deref(), Some("acme"));
        assert_eq!(m.inactive_days, Some(90));
    }

    fn mailbox(i: usize, name_len: usize) -> ShardMailbox {
        ShardMailbox {
            position: 0,
            upn: format!("m{i}@x.example"),
            address: format!("m{i}@x.example"),
            display_name: "n".repeat(name_len),
            recipient_type: "UserMailbox".into(),
            rights: None,
            folders: Vec::new(),
        }
    }

    #[test]
    fn shards_keep_to_their_size_and_to_what_a_message_holds() {
        let shards = ScanShard::cut((0..25).map(|i| mailbox(i, 5)).collect(), 10);
        let sizes: Vec<usize> = shards.iter().map(|s| s.mailboxes.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!(shards[2].shard_id, 3);
        assert_eq!(shards[2].mailboxes[4].position, 4);
        assert_eq!(shards[2].mailboxes[4].upn, "m24@x.example");
        // Long names: a thousand mailboxes do not fit one message.
        let shards = ScanShard::cut((0..1000).map(|i| mailbox(i, 400)).collect(), 1000);
        assert!(shards.len() > 1);
        for s in &shards {
            let message = StepMessage::new(RunId("r".into()), Step::Scan(s.clone()));
            assert!(serde_json::to_string(&message).unwrap().len() <= SHARD_MESSAGE_BYTES + 1024);
        }
        assert_eq!(
            shards.iter().map(|s| s.mailboxes.len()).sum::<usize>(),
            1000
        );
        assert!(ScanShard::cut(Vec::new(), 10).is_empty());
    }
}
