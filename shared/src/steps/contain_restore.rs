//! A restore of a contain run puts back what its identity phase changed, as its verified audit
//! trail records it and only for the run's user: sign-in enabled again when that run disabled
//! it (the account was enabled before), each deleted consent re-created (same clientId,
//! resourceId, scope, consentType, principalId), each verified by reading it again. Revoked
//! sessions and a confirmed compromise are `not_restorable`. A dry restore says `would_do`.

use super::audit_trail::ChainWriter;
use super::contain_identity::{identity_record, IDENTITY_CHAIN};
use crate::error::{ErrorKind, RemoteError, StepError};
use crate::model::{
    AuditPhase, AuditRecord, AuditResult, ContainAction, ContainActionKind, ContainActionStatus,
    IdentityChange, ResolvedUser, Run,
};
use crate::ports::{ConsentGrant, IdentityActions, RunStore};
use chrono::Utc;

/// What the source run's identity phase did (its `done` outcomes), from its trail.
pub(crate) fn identity_changes(records: &[AuditRecord]) -> Vec<IdentityChange> {
    records
        .iter()
        .filter(|r| {
            r.record_id.starts_with("identity#")
                && r.phase == AuditPhase::Outcome
                && r.result == Some(AuditResult::Removed)
        })
        .filter_map(|r| r.detail.as_deref().and_then(IdentityChange::from_detail))
        .collect()
}

/// Puts back what `changes` changed, for `user` only; each result audited in the restore's own
/// `identity` chain.
pub(crate) async fn restore_identity(
    store: &dyn RunStore,
    identity: &dyn IdentityActions,
    run: &Run,
    user: &ResolvedUser,
    changes: Vec<IdentityChange>,
) -> Result<Vec<ContainAction>, StepError> {
    let trail = ChainWriter::new(store, &run.run_id, IDENTITY_CHAIN.into());
    let dry = run.request.dry_run;
    let mut out = Vec::new();
    for change in changes {
        let action = match &change {
            IdentityChange::SessionsRevoked { .. } => ContainAction {
                note: Some("revoked sessions cannot be given back: the user signs in again".into()),
                ..ContainAction::new(
                    ContainActionKind::RevokeSessions,
                    ContainActionStatus::NotRestorable,
                    Utc::now(),
                )
            },
            IdentityChange::ConfirmedCompromised { .. } => ContainAction {
                note: Some(
                    "dismiss the user's risk in Entra ID Protection if the compromise is disproved"
                        .into(),
                ),
                ..ContainAction::new(
                    ContainActionKind::ConfirmCompromised,
                    ContainActionStatus::NotRestorable,
                    Utc::now(),
                )
            },
            IdentityChange::SignInDisabled {
                user_id,
                account_enabled_before,
            } => {
                let kind = ContainActionKind::DisableSignIn;
                if !user_id.eq_ignore_ascii_case(&user.id) {
                    foreign(kind, user_id)
                } else if *account_enabled_before == Some(false) {
                    ContainAction {
                        note: Some("the account was disabled before the run: left disabled".into()),
                        ..ContainAction::new(kind, ContainActionStatus::Skipped, Utc::now())
                    }
                } else if dry {
                    ContainAction::new(kind, ContainActionStatus::WouldDo, Utc::now())
                } else {
                    enable_again(identity, user_id).await
                }
            }
            IdentityChange::ConsentRemoved {
                client_id,
                app_name,
                consent_type,
                principal_id,
                resource_id,
                scope,
                ..
            } => {
                let kind = ContainActionKind::RemoveConsent;
                let grant = ConsentGrant {
                    id: String::new(),
                    client_id: client_id.clone(),
                    consent_type: consent_type.clone(),
                    principal_id: principal_id.clone(),
                    resource_id: resource_id.clone(),
                    scope: scope.clone(),
                };
                let mut action = if !grant.is_users_own(&user.id) {
                    foreign(kind, principal_id.as_deref().unwrap_or("all users"))
                } else if dry {
                    ContainAction::new(kind, ContainActionStatus::WouldDo, Utc::now())
                } else {
                    recreate(identity, &user.id, &grant).await
                };
                action.client_id = Some(client_id.clone());
                action.app_name = app_name.clone();
                action.scope = Some(scope.clone());
                action.resource_id = Some(resource_id.clone());
                action.consent_type = Some(consent_type.clone());
                action.principal_id = principal_id.clone();
                action
            }
        };
        if !dry {
            let key = match &change {
                IdentityChange::ConsentRemoved { grant_id, .. } => format!("consent#{grant_id}"),
                _ => action.action.as_str().to_string(),
            };
            let result = match action.status {
                ContainActionStatus::Failed => AuditResult::Failed,
                _ => AuditResult::Restored,
            };
            let detail = format!("{} {:?}", change.to_detail(), action.status);
            let record = identity_record(
                run,
                &key,
                AuditPhase::Restore,
                action.action,
                Some(result),
                detail,
            );
            trail.append(record).await?;
        }
        out.push(action);
    }
    // In the order the contain run acts: sessions, sign-in, consents, risk.
    out.sort_by_key(|a| a.action);
    Ok(out)
}

/// An action the trail records for someone else than the run's user: never acted on.
fn foreign(kind: ContainActionKind, who: &str) -> ContainAction {
    ContainAction::failed(
        kind,
        Utc::now(),
        format!("the trail names '{who}', who is not the run's user: not put back"),
    )
}

fn failed(kind: ContainActionKind, e: &RemoteError) -> ContainAction {
    let mut a = ContainAction::failed(kind, Utc::now(), e.reason());
    if matches!(e.kind, ErrorKind::Api { status: 403, .. }) {
        a.missing_role = Some(kind.graph_role().to_string());
    }
    a
}

async fn enable_again(identity: &dyn IdentityActions, user_id: &str) -> ContainAction {
    let kind = ContainActionKind::DisableSignIn;
    let now = match identity.identity_user(user_id).await {
        Ok(u) => u,
        Err(e) => return failed(kind, &e),
    };
    if now.account_enabled == Some(true) {
        return ContainAction::new(kind, ContainActionStatus::AlreadyPresent, Utc::now());
    }
    if let Err(e) = identity.set_account_enabled(user_id, true).await {
        return failed(kind, &e);
    }
    match identity.identity_user(user_id).await {
        Ok(u) if u.account_enabled == Some(true) => {
            ContainAction::new(kind, ContainActionStatus::Restored, Utc::now())
        }
        Ok(_) => ContainAction::failed(
            kind,
            Utc::now(),
            "the account still reads as disabled after it was enabled".into(),
        ),
        Err(e) => failed(kind, &e),
    }
}

/// Whether `grants` hold `wanted` again: the same app, resource, consent type and user, with
/// every scope it had.
fn holds(grants: &[ConsentGrant], wanted: &ConsentGrant) -> Option<String> {
    grants
        .iter()
        .find(|g| {
            g.client_id.eq_ignore_ascii_case(&wanted.client_id)
                && g.resource_id.eq_ignore_ascii_case(&wanted.resource_id)
                && g.consent_type.eq_ignore_ascii_case(&wanted.consent_type)
                && g.principal_id == wanted.principal_id
                && wanted.scope.split_whitespace().all(|s| {
                    g.scope
                        .split_whitespace()
                        .any(|h| h.eq_ignore_ascii_case(s))
                })
        })
        .map(|g| g.id.clone())
}

async fn recreate(
    identity: &dyn IdentityActions,
    user_id: &str,
    grant: &ConsentGrant,
) -> ContainAction {
    let kind = ContainActionKind::RemoveConsent;
    match identity.consent_grants(user_id).await {
        Ok(now) => {
            if let Some(id) = holds(&now, grant) {
                return ContainAction {
                    grant_id: Some(id),
                    ..ContainAction::new(kind, ContainActionStatus::AlreadyPresent, Utc::now())
                };
            }
        }
        Err(e) => return failed(kind, &e),
    }
    // A 409 (the same grant made meanwhile) is read back like a success.
    if let Err(e) = identity.create_consent_grant(grant).await {
        if !matches!(e.kind, ErrorKind::Api { status: 409, .. }) {
            return failed(kind, &e);
        }
    }
    match identity.consent_grants(user_id).await {
        Ok(now) => match holds(&now, grant) {
            Some(id) => ContainAction {
                grant_id: Some(id),
                ..ContainAction::new(kind, ContainActionStatus::Restored, Utc::now())
            },
            None => ContainAction::failed(
                kind,
                Utc::now(),
                "the consent was created but does not read back".into(),
            ),
        },
        Err(e) => failed(kind, &e),
    }
}
