//! Per-company organizational variables (product.md §2).

use super::{validate_company_id, InvalidRequest, PermissionType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PsaKind {
    #[default]
    Connectwise,
}

impl PsaKind {
    /// Why `ticket_id` cannot be a ticket of this PSA, if it cannot: checked at intake and
    /// again by the client before any call.
    pub fn ticket_id_error(self, ticket_id: &str) -> Option<String> {
        match self {
            PsaKind::Connectwise => {
                let numeric = ticket_id.bytes().all(|b| b.is_ascii_digit())
                    && ticket_id.parse::<u64>().is_ok();
                (!numeric).then(|| format!("'{ticket_id}' is not a ConnectWise ticket number; expected digits only, e.g. 48213"))
            }
        }
    }
}

/// Unknown keys are rejected: a misspelt `m365_permission_removal_scope` must not silently
/// widen the scope to every type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSettings {
    pub company_id: String,
    pub company_name: String,
    pub tenant_id: String,
    /// The PSA's identifier of the company (ConnectWise `company.identifier`).
    pub psa_company: String,
    #[serde(default)]
    pub psa_kind: PsaKind,
    pub m365_permission_ticket_board: String,
    #[serde(default)]
    pub m365_permission_removal_scope: Vec<PermissionType>,
    #[serde(default)]
    pub m365_permission_notification_recipients: Vec<String>,
    pub notification_sender: String,
    /// Who may start, read and restore this company's runs: principal ARNs (a role ARN covers
    /// its sessions), `sqs:SENDER_ID`, `events:ACCOUNT:SOURCE`, `hmac:CALLER`, `os-user:NAME`;
    /// a trailing `*` matches a prefix. Empty: every caller that can reach a trigger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_principals: Vec<String>,
    /// Domains a requestor's address may have for the report to be mailed to it (the
    /// company's accepted domains, the MSP's own). The sender's domain is always one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report_domains: Vec<String>,
}

/// Checks every company of a config file or an org file the same way: each one
/// ([`OrgSettings::validate`]), at least one, no company id twice.
pub fn validate_companies(orgs: &[OrgSettings]) -> Result<(), InvalidRequest> {
    if orgs.is_empty() {
        return Err(InvalidRequest::new(
            "company",
            "no [[company]] is defined (or, in JSON, no company object)",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for org in orgs {
        org.validate()?;
        if !seen.insert(org.company_id.as_str()) {
            return Err(InvalidRequest::new(
                "company_id",
                format!("'{}' is defined twice", org.company_id),
            ));
        }
    }
    Ok(())
}

impl OrgSettings {
    /// What the file format cannot say: the company id is one a request may name, and every
    /// required value is there (not blank). Reachability of the sender, the recipients and
    /// the PSA company is `revoke365 check`'s job.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        if self.company_id.trim().is_empty() {
            return Err(InvalidRequest::new("company_id", "must not be empty"));
        }
        validate_company_id(&self.company_id)?;
        for (field, value) in [
            ("company_name", &self.company_name),
            ("tenant_id", &self.tenant_id),
            ("psa_company", &self.psa_company),
            (
                "m365_permission_ticket_board",
                &self.m365_permission_ticket_board,
            ),
            ("notification_sender", &self.notification_sender),
        ] {
            if value.trim().is_empty() {
                return Err(InvalidRequest::new(
                    field,
                    format!("must not be empty (company '{}')", self.company_id),
                ));
            }
        }
        Ok(())
    }

    /// Whether a report may be mailed to `address`: its domain is the sender's or one of
    /// `report_domains` (case-insensitive).
    pub fn may_receive_report(&self, address: &str) -> bool {
        let domain_of = |a: &str| {
            a.rsplit_once('@')
                .map(|(_, d)| d.trim().to_ascii_lowercase())
        };
        let Some(domain) = domain_of(address) else {
            return false;
        };
        domain_of(&self.notification_sender).as_deref() == Some(domain.as_str())
            || self.report_domains.iter().any(|d| {
                d.trim()
                    .trim_start_matches('@')
                    .eq_ignore_ascii_case(&domain)
            })
    }

    /// The org settings of a sandbox tenant fixture (product.md §6): its `organization`,
    /// completed with the fixture's `tenant_id` (`psa_company` defaults to the company id).
    pub fn from_fixture(fixture: &serde_json::Value) -> Result<OrgSettings, String> {
        let mut org = fixture
            .get("organization")
            .cloned()
            .ok_or("the fixture has no 'organization'")?;
        let obj = org
            .as_object_mut()
            .ok_or("'organization' must be an object")?;
        obj.insert(
            "tenant_id".into(),
            fixture
                .get("tenant_id")
                .cloned()
                .ok_or("the fixture has no 'tenant_id'")?,
        );
        if !obj.contains_key("psa_company") {
            let id = obj.get("company_id").cloned().unwrap_or_default();
            obj.insert("psa_company".into(), id);
        }
        serde_json::from_value(org).map_err(|e| format!("'organization': {e}"))
    }
}
