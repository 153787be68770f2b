//! Who may act for which company. Every trigger names its caller as a principal (the IAM ARN
//! behind an API request, the SQS `SenderId`, the EventBridge `account`/`source`, the HMAC
//! caller, the CLI's OS user); a company's `allowed_principals` say which of them may start,
//! read or restore its runs. One check, [`authorize_company`], for every route that does.

use crate::error::StoreError;
use crate::model::OrgSettings;
use crate::ports::RunStore;
use tracing::warn;

/// A principal that a company's allow-list does not name (or no principal where the company
/// has a list). Says nothing about the company beyond what the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("principal '{principal}' is not allowed to act for this company")]
pub struct Refused {
    pub principal: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The company has no settings (a run of a company since removed).
    #[error("company not configured")]
    UnknownCompany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The allow-list check: a company without `allowed_principals` lets every caller that can
/// reach a trigger act for it; one with a list, only the principals it names. An entry
/// matches the principal exactly, or as a prefix when it ends in `*`; an IAM role ARN
/// (`arn:aws:iam::111122223333:role/Helpdesk`) also matches that role's sessions
/// (`arn:aws:sts::111122223333:assumed-role/Helpdesk/alice`).
pub fn authorize(org: &OrgSettings, principal: Option<&str>) -> Result<(), Refused> {
    if org.allowed_principals.is_empty() {
        return Ok(());
    }
    listed(&org.allowed_principals, principal)
}

/// The powers that grant or reveal access, each with a list of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// Put access back: restore a run, restore a mailbox from a backup.
    Restore,
    /// Read who can open which mailbox (`GET /access`).
    Access,
}

/// The check for a power that grants or reveals access: only the principals its own list
/// (`restore_principals`, `access_principals`) names. Deny by default — an empty list allows
/// no caller of a deployed trigger; the CLI's operator (`os-user:…`), whose power is the
/// machine's and its files', is allowed when the list is empty.
pub fn authorize_power(
    org: &OrgSettings,
    principal: Option<&str>,
    power: Power,
) -> Result<(), Refused> {
    let list = match power {
        Power::Restore => &org.restore_principals,
        Power::Access => &org.access_principals,
    };
    let local_operator = principal.is_some_and(|p| p.starts_with("os-user:"));
    if list.is_empty() && local_operator {
        return Ok(());
    }
    listed(list, principal)
}

/// Whether `list` names `principal` (exactly, by a `*` prefix, or as its role's session).
fn listed(list: &[String], principal: Option<&str>) -> Result<(), Refused> {
    let refused = || Refused {
        principal: principal.unwrap_or("(none)").to_string(),
    };
    let principal = principal.ok_or_else(refused)?;
    let role = role_of_session(principal);
    let matches = |entry: &str| match entry.strip_suffix('*') {
        Some(prefix) => principal.starts_with(prefix),
        None => entry == principal || role.as_deref() == Some(entry),
    };
    if list.iter().any(|e| matches(e.trim())) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// The check for a route that reads or acts on a company's runs (status, history, audit,
/// access, restore): loads the company's settings and applies [`authorize`]. A refusal is
/// logged with the principal.
pub async fn authorize_company(
    store: &dyn RunStore,
    company_id: &str,
    principal: Option<&str>,
) -> Result<(), AccessError> {
    let org = store
        .org_settings(company_id)
        .await?
        .ok_or(AccessError::UnknownCompany)?;
    authorize(&org, principal).inspect_err(|e| log_refusal(e, company_id))?;
    Ok(())
}

/// [`authorize_company`] for a power with a list of its own ([`authorize_power`]).
pub async fn authorize_company_power(
    store: &dyn RunStore,
    company_id: &str,
    principal: Option<&str>,
    power: Power,
) -> Result<(), AccessError> {
    let org = store
        .org_settings(company_id)
        .await?
        .ok_or(AccessError::UnknownCompany)?;
    authorize_power(&org, principal, power).inspect_err(|e| log_refusal(e, company_id))?;
    Ok(())
}

/// Every refusal leaves a line naming who was refused and for which company.
pub fn log_refusal(refused: &Refused, company_id: &str) {
    warn!(principal = %refused.principal, %company_id, "refused: principal not allowed for the company");
}

/// `arn:aws:iam::ACCOUNT:role/NAME` for an assumed-role session ARN.
fn role_of_session(principal: &str) -> Option<String> {
    let rest = principal.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(":sts::")?;
    let (account, rest) = rest.split_once(":assumed-role/")?;
    let (role, _session) = rest.split_once('/')?;
    Some(format!("arn:{partition}:iam::{account}:role/{role}"))
}

/// How each trigger names its caller.
pub mod principal {
    /// The SQS `SenderId` attribute of an offboarding message (an account or role id).
    pub fn sqs_sender(sender_id: &str) -> String {
        format!("sqs:{sender_id}")
    }
    /// The account and source of an EventBridge event.
    pub fn event_source(account: &str, source: &str) -> String {
        format!("events:{account}:{source}")
    }
    /// A webhook caller that signed with its shared secret.
    pub fn hmac_caller(caller: &str) -> String {
        format!("hmac:{caller}")
    }
    /// The operating-system user running the CLI.
    pub fn os_user(user: &str) -> String {
        format!("os-user:{user}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(allowed: &[&str]) -> OrgSettings {
        OrgSettings::from_fixture(&serde_json::json!({
            "tenant_id": "t",
            "organization": {"company_id": "acme", "company_name": "Acme", "m365_permission_ticket_board": "b",
                "notification_sender": "it@acme.example", "allowed_principals": allowed}
        }))
        .unwrap()
    }

    #[test]
    fn the_powers_that_grant_and_reveal_deny_by_default_but_to_the_local_operator() {
        let mut o = org(&[]);
        let helpdesk = "arn:aws:sts::111122223333:assumed-role/Helpdesk/alice";
        for power in [Power::Restore, Power::Access] {
            assert!(authorize_power(&o, Some(helpdesk), power).is_err());
            assert!(authorize_power(&o, None, power).is_err());
            assert!(authorize_power(&o, Some("os-user:jane"), power).is_ok());
        }
        o.restore_principals = vec!["arn:aws:iam::111122223333:role/Helpdesk".into()];
        assert!(authorize_power(&o, Some(helpdesk), Power::Restore).is_ok());
        assert!(authorize_power(&o, Some("os-user:jane"), Power::Restore).is_err());
        assert!(authorize_power(&o, Some(helpdesk), Power::Access).is_err());
    }

    #[test]
    fn an_empty_list_allows_every_caller() {
        assert!(authorize(&org(&[]), None).is_ok());
    }

    #[test]
    fn a_role_entry_allows_its_sessions_and_nothing_else() {
        let o = org(&["arn:aws:iam::111122223333:role/Helpdesk", "hmac:sentinel*"]);
        assert!(authorize(
            &o,
            Some("arn:aws:sts::111122223333:assumed-role/Helpdesk/alice")
        )
        .is_ok());
        assert!(authorize(&o, Some("hmac:sentinel-eu")).is_ok());
        assert!(authorize(
            &o,
            Some("arn:aws:sts::111122223333:assumed-role/Helpdesk2/alice")
        )
        .is_err());
        assert!(authorize(&o, Some("arn:aws:iam::999999999999:role/Helpdesk")).is_err());
        assert!(authorize(&o, None).is_err());
    }
}
