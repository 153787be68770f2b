//! The very first phase of a contain run, before any mailbox grant: the company's
//! `[company.contain]` actions on the user's identity — sessions revoked and sign-in disabled
//! at once, then the user's own app consents that reach mail deleted and the compromise
//! confirmed. Each change is audited before and after its call in the `identity` chain (the
//! audit record's `detail` holds the before-state: what a restore may put back). A failed
//! action fails only itself: the others are done, and the result says which and why (a 403
//! names the Graph permission the app lacks). A dry run reads and reports `would_do`.

use super::audit_trail::ChainWriter;
use super::RunContext;
use crate::error::{ErrorKind, RemoteError, StepError};
use crate::model::{
    mail_scopes, AuditPhase, AuditRecord, AuditResult, ContainAction, ContainActionKind,
    ContainActionStatus, ContainSettings, IdentityChange, IdentityContainment, Run,
    ON_PREMISES_NOTE,
};
use crate::ports::{ConsentGrant, IdentityActions, IdentityUser, ScanFacts, UserLookup};
use chrono::Utc;
use futures_util::future::join_all;
use tracing::{info, info_span, warn, Instrument};

/// The audit chain of the identity actions.
pub(crate) const IDENTITY_CHAIN: &str = "identity";

/// The facts part the phase's outcome is kept under.
const FACTS_PART: &str = "identity";

/// Runs the identity phase of `cx.run` once (a redelivery finds its facts and does nothing).
pub(crate) async fn contain_identity(cx: RunContext<'_>) -> Result<(), StepError> {
    let run = cx.run;
    let span = info_span!("contain_identity", run_id = %run.run_id);
    async {
        if cx.store.scan_facts(&run.run_id).await?.identity.is_some() {
            return Ok(());
        }
        let policy = cx.org.contain_settings();
        let identity = act(cx, policy).await?;
        for a in &identity.actions {
            info!(action = a.action.as_str(), status = ?a.status, "contain action");
        }
        let facts = ScanFacts {
            identity: Some(identity),
            ..ScanFacts::default()
        };
        cx.store.save_facts(&run.run_id, FACTS_PART, &facts).await?;
        Ok(())
    }
    .instrument(span)
    .await
}

/// What the actions need: the run, its trail, the Graph client, whether it is a dry run.
struct Acting<'a> {
    run: &'a Run,
    trail: ChainWriter<'a>,
    identity: &'a dyn IdentityActions,
    dry_run: bool,
}

async fn act(
    cx: RunContext<'_>,
    policy: ContainSettings,
) -> Result<IdentityContainment, StepError> {
    let run = cx.run;
    let wanted = [
        (policy.revoke_sessions, ContainActionKind::RevokeSessions),
        (policy.disable_sign_in, ContainActionKind::DisableSignIn),
        (
            policy.remove_mail_consents,
            ContainActionKind::RemoveConsent,
        ),
        (
            policy.confirm_compromised,
            ContainActionKind::ConfirmCompromised,
        ),
    ];
    if wanted.iter().all(|(on, _)| !on) {
        return Ok(IdentityContainment::default());
    }
    // The alert's user, exactly: the directory's object id is what every action names.
    let user = match cx.tenant.directory.find_user(&run.request.user_email).await {
        Ok(UserLookup::Found { user, .. }) => user,
        found => {
            let why = match found {
                Err(e) => format!("the user could not be looked up: {}", e.reason()),
                _ => "the user is not exactly one directory user (the live discovery says why)"
                    .into(),
            };
            let actions = wanted
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, kind)| ContainAction {
                    note: Some(why.clone()),
                    ..ContainAction::new(*kind, ContainActionStatus::Skipped, Utc::now())
                })
                .collect();
            return Ok(IdentityContainment {
                actions,
                on_premises_synced: false,
            });
        }
    };
    let acting = Acting {
        run,
        trail: ChainWriter::new(cx.store, &run.run_id, IDENTITY_CHAIN.into()),
        identity: cx.tenant.identity,
        dry_run: run.request.dry_run,
    };
    let acting = &acting;
    let user_id = user.id.as_str();
    // First: sessions and sign-in, together.
    let (revoked, (disabled, state)) = tokio::join!(
        async {
            match policy.revoke_sessions {
                true => Some(revoke_sessions(acting, user_id).await),
                false => None,
            }
        },
        async {
            let state = acting.identity.identity_user(user_id).await;
            let disabled = match policy.disable_sign_in {
                true => Some(disable_sign_in(acting, user_id, state.as_ref()).await),
                false => None,
            };
            (disabled, state)
        }
    );
    // Then: the user's mail consents, and the compromise confirmed.
    let (consents, confirmed) = tokio::join!(
        async {
            match policy.remove_mail_consents {
                true => remove_mail_consents(acting, user_id).await,
                false => Ok(Vec::new()),
            }
        },
        async {
            match policy.confirm_compromised {
                true => Some(confirm_compromised(acting, user_id).await),
                false => None,
            }
        }
    );
    let mut actions: Vec<ContainAction> = Vec::new();
    for a in [revoked, disabled].into_iter().flatten() {
        actions.push(a?);
    }
    actions.extend(consents?);
    if let Some(a) = confirmed {
        actions.push(a?);
    }
    let on_premises_synced = state.as_ref().is_ok_and(|u| u.on_premises_sync_enabled);
    if let Err(e) = &state {
        warn!(error = %e.reason(), "the user's sign-in state could not be read");
    }
    Ok(IdentityContainment {
        actions,
        on_premises_synced,
    })
}

/// A record of the identity chain: `identity#<key>#<phase>`.
pub(super) fn identity_record(
    run: &Run,
    key: &str,
    phase: AuditPhase,
    action: ContainActionKind,
    result: Option<AuditResult>,
    detail: String,
) -> AuditRecord {
    let phase_name = match phase {
        AuditPhase::Before => "before",
        AuditPhase::Restore => "restore",
        _ => "outcome",
    };
    AuditRecord {
        run_id: run.run_id.clone(),
        record_id: format!("identity#{key}#{phase_name}"),
        phase,
        recorded_at: Utc::now(),
        user_email: run.request.user_email.clone(),
        company_id: run.request.company_id.clone(),
        requested_by: run.request.requested_by.clone(),
        requested_by_principal: run.request.requested_by_principal.clone(),
        reason: run.request.reason.clone(),
        item_id: None,
        grant: None,
        action: Some(action.as_str().into()),
        result,
        detail: Some(detail),
        verification: None,
        victim: None,
        chain: None,
        seq: None,
        prev_hash: None,
        hash: None,
    }
}

/// The failed action for `e`: a 403 names the permission the app needs.
fn failed(kind: ContainActionKind, e: &RemoteError) -> ContainAction {
    let mut a = ContainAction::failed(kind, Utc::now(), e.reason());
    if matches!(e.kind, ErrorKind::Api { status: 403, .. }) || e.is_auth() {
        a.missing_role = Some(kind.graph_role().to_string());
    }
    a
}

/// Audits `change` before the call, makes it, audits the outcome.
async fn audited<F>(
    acting: &Acting<'_>,
    key: &str,
    kind: ContainActionKind,
    change: &IdentityChange,
    call: F,
) -> Result<ContainAction, StepError>
where
    F: std::future::Future<Output = Result<(), RemoteError>>,
{
    if acting.dry_run {
        return Ok(ContainAction::new(
            kind,
            ContainActionStatus::WouldDo,
            Utc::now(),
        ));
    }
    let detail = change.to_detail();
    acting
        .trail
        .append(identity_record(
            acting.run,
            key,
            AuditPhase::Before,
            kind,
            None,
            detail.clone(),
        ))
        .await?;
    let outcome = call.await;
    let (action, result, detail) = match &outcome {
        Ok(()) => (
            ContainAction::new(kind, ContainActionStatus::Done, Utc::now()),
            AuditResult::Removed,
            detail,
        ),
        Err(e) => (
            failed(kind, e),
            AuditResult::Failed,
            format!("{detail} failed: {}", e.reason()),
        ),
    };
    acting
        .trail
        .append(identity_record(
            acting.run,
            key,
            AuditPhase::Outcome,
            kind,
            Some(result),
            detail,
        ))
        .await?;
    Ok(action)
}

async fn revoke_sessions(acting: &Acting<'_>, user_id: &str) -> Result<ContainAction, StepError> {
    let change = IdentityChange::SessionsRevoked {
        user_id: user_id.into(),
    };
    audited(
        acting,
        "revoke_sessions",
        ContainActionKind::RevokeSessions,
        &change,
        acting.identity.revoke_sign_in_sessions(user_id),
    )
    .await
}

async fn disable_sign_in(
    acting: &Acting<'_>,
    user_id: &str,
    state: Result<&IdentityUser, &RemoteError>,
) -> Result<ContainAction, StepError> {
    let kind = ContainActionKind::DisableSignIn;
    let before = state.ok().and_then(|u| u.account_enabled);
    if before == Some(false) {
        return Ok(ContainAction {
            note: Some(
                "the account was disabled already; not changed (a restore leaves it disabled)"
                    .into(),
            ),
            ..ContainAction::new(kind, ContainActionStatus::Skipped, Utc::now())
        });
    }
    let change = IdentityChange::SignInDisabled {
        user_id: user_id.into(),
        account_enabled_before: before,
    };
    let mut action = audited(
        acting,
        "disable_sign_in",
        kind,
        &change,
        acting.identity.set_account_enabled(user_id, false),
    )
    .await?;
    if state.is_ok_and(|u| u.on_premises_sync_enabled) {
        action.note = Some(ON_PREMISES_NOTE.into());
    }
    Ok(action)
}

async fn confirm_compromised(
    acting: &Acting<'_>,
    user_id: &str,
) -> Result<ContainAction, StepError> {
    let change = IdentityChange::ConfirmedCompromised {
        user_id: user_id.into(),
    };
    let ids = [user_id.to_string()];
    audited(
        acting,
        "confirm_compromised",
        ContainActionKind::ConfirmCompromised,
        &change,
        acting.identity.confirm_compromised(&ids),
    )
    .await
}

/// The user's own consents whose scope reaches mail, each deleted (its whole grant: a grant
/// is one scope string); consents with only other scopes, and admins' consents for all users,
/// stay.
async fn remove_mail_consents(
    acting: &Acting<'_>,
    user_id: &str,
) -> Result<Vec<ContainAction>, StepError> {
    let kind = ContainActionKind::RemoveConsent;
    let grants = match acting.identity.consent_grants(user_id).await {
        Ok(grants) => grants,
        Err(e) => return Ok(vec![failed(kind, &e)]),
    };
    let mail: Vec<ConsentGrant> = grants
        .into_iter()
        .filter(|g| g.is_users_own(user_id) && !mail_scopes(&g.scope).is_empty())
        .collect();
    let done = join_all(mail.iter().map(|g| remove_consent(acting, g))).await;
    done.into_iter().collect()
}

async fn remove_consent(
    acting: &Acting<'_>,
    grant: &ConsentGrant,
) -> Result<ContainAction, StepError> {
    let kind = ContainActionKind::RemoveConsent;
    // The app's name is for people; a failure to read it does not stop the removal.
    let (app_name, name_note) = match acting.identity.app_name(&grant.client_id).await {
        Ok(name) => (name, None),
        Err(e) => (
            None,
            Some(format!("the app's name could not be read: {}", e.reason())),
        ),
    };
    let change = IdentityChange::ConsentRemoved {
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        app_name: app_name.clone(),
        consent_type: grant.consent_type.clone(),
        principal_id: grant.principal_id.clone(),
        resource_id: grant.resource_id.clone(),
        scope: grant.scope.clone(),
    };
    let call = async {
        acting
            .identity
            .delete_consent_grant(&grant.id)
            .await
            .map(drop)
    };
    let key = format!("consent#{}", grant.id);
    let mut action = audited(acting, &key, kind, &change, call).await?;
    action.client_id = Some(grant.client_id.clone());
    action.app_name = app_name;
    action.scope = Some(grant.scope.clone());
    action.grant_id = Some(grant.id.clone());
    action.resource_id = Some(grant.resource_id.clone());
    action.consent_type = Some(grant.consent_type.clone());
    action.principal_id = grant.principal_id.clone();
    if action.note.is_none() {
        action.note = name_note;
    }
    Ok(action)
}
