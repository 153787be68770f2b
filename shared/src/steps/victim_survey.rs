//! What the victim-mailbox step reads before it changes anything: the mailbox's forwarding,
//! its inbox rules (hidden ones included) and the grants to others on it, each told recent
//! or of unknown age by a permission-index snapshot (see [`DelegateBaseline`]).

use super::Tenant;
use crate::error::{RemoteError, StepError};
use crate::model::{
    DelegateAge, Grant, InboxRule, PermissionType, ResolvedUser, Run, VictimDelegate, VictimSurvey,
    RECENT_DELEGATE_DAYS,
};
use crate::ports::{DelegateBaseline, Exchange, MailboxInfo};
use crate::scan::calendar_grant;
use tracing::warn;

/// Reads the victim's mailbox. A read that may succeed later is an error (the step is
/// retried); one that cannot is kept in the survey's errors (the run cannot succeed).
pub(super) async fn read_survey(
    tenant: Tenant<'_>,
    baseline: &dyn DelegateBaseline,
    run: &Run,
) -> Result<VictimSurvey, StepError> {
    let mut survey = VictimSurvey::default();
    let Some(user) = run.user.as_ref() else {
        survey
            .errors
            .push("the user was not resolved, so their mailbox was not read".into());
        return Ok(survey);
    };
    let settings = match permanent(tenant.exchange.mailbox_settings(&user.upn).await)? {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            survey.errors.push(format!(
                "{} has no Exchange Online mailbox to contain",
                user.upn
            ));
            return Ok(survey);
        }
        Err(e) => {
            survey
                .errors
                .push(format!("reading the mailbox of {}: {e}", user.upn));
            return Ok(survey);
        }
    };
    survey.mailbox = settings.info.address();
    survey.forwarding = settings.forwarding;
    match permanent(tenant.exchange.inbox_rules(&survey.mailbox).await)? {
        Ok(rules) => {
            survey.rules_total = rules.len();
            survey.offending_rules = rules.into_iter().filter(InboxRule::is_offending).collect();
        }
        Err(e) => survey.errors.push(format!("reading the inbox rules: {e}")),
    }
    let (grants, errors) = delegates(tenant, user, &settings.info).await?;
    survey.errors.extend(errors);
    let old = match baseline
        .baseline(
            &run.request.company_id,
            &survey.mailbox,
            RECENT_DELEGATE_DAYS,
        )
        .await
    {
        Ok(old) => old,
        Err(e) => {
            survey.errors.push(format!(
                "reading the permission-index snapshot of {}: {e}",
                survey.mailbox
            ));
            None
        }
    };
    survey.baseline = old.is_some();
    survey.delegates = grants
        .into_iter()
        .filter_map(|grant| match &old {
            None => Some(VictimDelegate {
                grant,
                age: DelegateAge::Unknown,
            }),
            Some(old) => (!old
                .iter()
                .any(|(t, who)| *t == grant.right && who.eq_ignore_ascii_case(&grant.trustee)))
            .then_some(VictimDelegate {
                grant,
                age: DelegateAge::Recent,
            }),
        })
        .collect();
    Ok(survey)
}

/// A transient failure is the step's error; any other result is the caller's to keep.
pub(super) fn permanent<T>(
    result: Result<T, RemoteError>,
) -> Result<Result<T, RemoteError>, StepError> {
    match result {
        Err(e) if e.is_transient() || e.is_stopped() => Err(e.into()),
        other => Ok(other),
    }
}

/// Values that name no person: well-known principals and SIDs.
fn names_nobody(value: &str) -> bool {
    let v = value.trim().to_ascii_uppercase();
    v.is_empty() || v.starts_with("NT AUTHORITY\\") || v == "NULL SID" || v.starts_with("S-1-")
}

/// The address of a trustee as an answer shows it; `None` for nobody (a well-known principal,
/// an orphaned SID, a name nothing resolves).
async fn trustee_address(
    exchange: &dyn Exchange,
    value: &str,
) -> Result<Option<String>, StepError> {
    if names_nobody(value) {
        return Ok(None);
    }
    if value.contains('@') {
        return Ok(Some(value.trim().to_ascii_lowercase()));
    }
    Ok(match permanent(exchange.recipient(value).await)? {
        Ok(Some(r)) if !r.primary_smtp_address.is_empty() => {
            Some(r.primary_smtp_address.to_ascii_lowercase())
        }
        Ok(_) => None,
        Err(e) => {
            warn!(trustee = %value, error = %e, "trustee on the victim's mailbox not resolved; left out");
            None
        }
    })
}

/// Full Access, Send As, Send on Behalf and calendar grants to others on the victim's mailbox.
async fn delegates(
    tenant: Tenant<'_>,
    user: &ResolvedUser,
    info: &MailboxInfo,
) -> Result<(Vec<Grant>, Vec<String>), StepError> {
    let mailbox = info.address();
    let (mut grants, mut errors) = (Vec::new(), Vec::new());
    let grant = |right: PermissionType, trustee: String, shown: &str, rights: Vec<String>| Grant {
        mailbox: mailbox.clone(),
        mailbox_display_name: info.display_name.clone(),
        shared: info.is_shared(),
        right,
        trustee_as_shown: (!shown.eq_ignore_ascii_case(&trustee)).then(|| shown.to_string()),
        trustee,
        recipient_type: Some(info.recipient_type_details.clone()),
        access_rights: rights,
        calendar: None,
        folder: None,
    };
    let exchange = tenant.exchange;
    let mut shown: Vec<(PermissionType, String, Vec<String>)> = Vec::new();
    match permanent(exchange.mailbox_permissions(&mailbox).await)? {
        Ok(entries) => shown.extend(
            entries
                .into_iter()
                .filter(|e| e.allows_full_access() && !e.is_inherited)
                .map(|e| (PermissionType::FullAccess, e.user, e.access_rights)),
        ),
        Err(e) => errors.push(format!("reading Full Access on {mailbox}: {e}")),
    }
    match permanent(exchange.send_as_on(&mailbox).await)? {
        Ok(entries) => shown.extend(
            entries
                .into_iter()
                .filter(|e| e.allows_send_as() && !e.is_inherited)
                .map(|e| {
                    (
                        PermissionType::SendAs,
                        e.trustee,
                        vec!["SendAs".to_string()],
                    )
                }),
        ),
        Err(e) => errors.push(format!("reading Send As on {mailbox}: {e}")),
    }
    shown.extend(
        info.grant_send_on_behalf_to
            .iter()
            .map(|d| (PermissionType::SendOnBehalf, d.clone(), Vec::new())),
    );
    for (right, value, rights) in shown {
        if user.is_user(&value) {
            continue;
        }
        if let Some(address) = trustee_address(exchange, &value).await? {
            if !user.is_user(&address) {
                grants.push(grant(right, address, &value, rights));
            }
        }
    }
    match permanent(
        tenant
            .directory
            .calendar_permissions(&info.user_principal_name)
            .await,
    )? {
        Ok(permissions) => {
            for p in permissions {
                let Some(address) = p.email_address.as_deref() else {
                    continue;
                };
                if !p.is_removable || p.role == "none" || user.is_user(address) {
                    continue;
                }
                let c = calendar_grant(&p, &info.user_principal_name);
                let mut g = grant(
                    PermissionType::Calendar,
                    address.to_ascii_lowercase(),
                    address,
                    vec![c.access_level.clone()],
                );
                g.calendar = Some(c);
                grants.push(g);
            }
        }
        Err(e) => errors.push(format!("reading calendar permissions on {mailbox}: {e}")),
    }
    grants.sort_by(|a, b| (a.right, &a.trustee).cmp(&(b.right, &b.trustee)));
    grants.dedup_by(|a, b| a.right == b.right && a.trustee == b.trustee);
    Ok((grants, errors))
}
