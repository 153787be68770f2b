//! The routes that put access back: a run's removals (`POST /revocations/{id}/restore`) and a
//! mailbox's grants as a permission-index snapshot held them (`POST /backups/restore`). Both
//! need the company's restore power; the intake steps check it once the body's form is.

use super::answer::{accepted_response, intake_failure};
use super::caller::Caller;
use super::form::{JsonBody, OptionalJsonBody, RunIdParam};
use super::Deps;
use crate::steps::{intake_backup, intake_restore};
use axum::extract::State;
use axum::response::Response;

/// `POST /revocations/{id}/restore`: a restore run that puts back what run `id` removed
/// (body: `permission_types`, `target_mailboxes`, `dry_run`, `include_revoked`,
/// `include_victim_mailbox`, `requested_by`, `reason`; all optional). 202 with the new run's
/// status URL; 404 for an unknown run, 409 for one that cannot be restored (not ended, a dry
/// run, a restore, its company now on another tenant).
pub(super) async fn post_restore(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    RunIdParam(source): RunIdParam,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Response {
    match intake_restore(&deps.store, &deps.queue, Some(&caller), &source, &body).await {
        Ok(accepted) => accepted_response(&accepted.run),
        Err(e) => intake_failure(&e),
    }
}

/// `POST /backups/restore`: a backup restore that puts one mailbox's grants back as a snapshot
/// of the permission index held them (body: `company_id`, `mailbox`, `as_of` — a snapshot id
/// or a date — and optionally `permission_types`, `dry_run`, `include_revoked`, `ticket_id`,
/// `requested_by`, `reason`). 202 with the new run's status URL; 400 for a bad body, 409 when
/// no snapshot matches `as_of` or it holds nothing on the mailbox.
pub(super) async fn post_backup_restore(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody,
) -> Response {
    match intake_backup(&deps.store, &deps.queue, Some(&caller), &body).await {
        Ok(accepted) => accepted_response(&accepted.run),
        Err(e) => intake_failure(&e),
    }
}
