//! Audit records: one per grant and phase, precise enough to restore every grant.

use super::{Grant, ItemId, RunId, Verification};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditPhase {
    /// Written before the removal call: the grant as it stood, and the intent to remove it.
    Before,
    /// Written when the time to stop came before the removal call after a `before` record was
    /// sent: that attempt removed nothing, so a later one finding the grant gone did not
    /// remove it either.
    NotSent,
    /// Written after the call: what happened.
    Outcome,
    /// Written once by verification.
    Verification,
    /// Written after a restore run's call that put the grant back: what happened.
    Restore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    Removed,
    AlreadyGone,
    Failed,
    DryRun,
    /// A restore run put the grant back.
    Restored,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub run_id: RunId,
    /// Unique within the run: `item#00007#before`, `item#00007#outcome`, `verification`.
    pub record_id: String,
    pub phase: AuditPhase,
    pub recorded_at: DateTime<Utc>,
    pub user_email: String,
    pub company_id: String,
    pub requested_by: Option<String>,
    /// Who sent the request, as its trigger proved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by_principal: Option<String>,
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<ItemId>,
    /// The before-state: everything a restore needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<AuditResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// A change on the victim's own mailbox (`victim_mailbox` runs), with its before-state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim: Option<super::VictimChange>,
    /// The hash chain the record is in (`batch#00003`, `verification`); absent on records
    /// written before audit trails were chained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Its place in the chain, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The hash of the record before it in the chain (none for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// SHA-256 (hex) of the record's canonical JSON without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl AuditRecord {
    /// `item#00007#before`, `item#00007#outcome`. An "already gone" outcome gets its own id so
    /// that a duplicate delivery finding nothing never overwrites the record of the removal.
    pub fn item_record_id(item: ItemId, phase: AuditPhase, result: Option<AuditResult>) -> String {
        let phase = match phase {
            AuditPhase::Before => "before",
            AuditPhase::NotSent => "not_sent",
            AuditPhase::Outcome if result == Some(AuditResult::AlreadyGone) => {
                "outcome#already_gone"
            }
            AuditPhase::Outcome => "outcome",
            AuditPhase::Verification => "verification",
            AuditPhase::Restore => "restore",
        };
        format!("item#{item:05}#{phase}")
    }

    /// The record of attempt `attempt` (from 1) at an item's removal: its intent
    /// (`item#00007#before`, a later attempt's `item#00007#before#2`) or the note that its call
    /// was not sent (`item#00007#not_sent#1`).
    pub fn attempt_record_id(item: ItemId, phase: AuditPhase, attempt: u32) -> String {
        let id = AuditRecord::item_record_id(item, phase, None);
        match (phase, attempt) {
            (AuditPhase::Before, 1) => id,
            _ => format!("{id}#{attempt}"),
        }
    }
}
