//! Per-company organizational variables (docs/configuration.md).

use super::request::is_domain_name;
use super::{
    validate_company_id, validate_email, AlertSettings, IndexSettings, InvalidRequest,
    PermissionType,
};
use serde::{Deserialize, Serialize};

/// Which PSA a company's tickets live in. An MSP may keep customers in several PSAs (moving
/// them over time), so each company names its own; `none` means no ticket at all: the report
/// goes by email and into the result only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PsaKind {
    #[default]
    Connectwise,
    Halo,
    Autotask,
    None,
}

impl PsaKind {
    /// [`Self::ticket_id_error`] as the error a PSA client answers with (`service` names it).
    pub fn check_ticket_id(
        self,
        service: &'static str,
        ticket_id: &str,
    ) -> Result<(), crate::error::RemoteError> {
        match self.ticket_id_error(ticket_id) {
            None => Ok(()),
            Some(message) => Err(crate::error::RemoteError::new(
                service,
                "check ticket id",
                crate::error::ErrorKind::InvalidInput {
                    field: "ticket_id",
                    message,
                },
            )),
        }
    }

    /// The PSA's name as people know it.
    pub fn label(self) -> &'static str {
        match self {
            PsaKind::Connectwise => "ConnectWise",
            PsaKind::Halo => "HaloPSA",
            PsaKind::Autotask => "Autotask",
            PsaKind::None => "no PSA",
        }
    }

    /// Whether this company's reports go to a PSA ticket.
    pub fn has_tickets(self) -> bool {
        self != PsaKind::None
    }

    /// Why `ticket_id` cannot be a ticket of this PSA, if it cannot: checked at intake and
    /// again by the client before any call. Ticket ids are integers in all three PSAs.
    pub fn ticket_id_error(self, ticket_id: &str) -> Option<String> {
        if self == PsaKind::None {
            return Some(format!(
                "this company has no PSA (psa_kind = \"none\"), so no ticket can be named ('{ticket_id}'); leave ticket_id out: the report goes by email and into the result"
            ));
        }
        let numeric =
            ticket_id.bytes().all(|b| b.is_ascii_digit()) && ticket_id.parse::<u64>().is_ok();
        (!numeric).then(|| {
            format!(
                "'{ticket_id}' is not a {} ticket number; expected digits only, e.g. 48213",
                self.label()
            )
        })
    }
}

/// A company's HaloPSA ids (each over the `[psa.halo]` default when set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaloIds {
    /// The client's site for new tickets (Halo's `site_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tickettype_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_id: Option<u64>,
    /// The outcome of the note's action: Halo refuses an action without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_id: Option<u64>,
}

impl HaloIds {
    /// These ids, each falling back to `default`'s.
    pub fn over(&self, default: &HaloIds) -> HaloIds {
        HaloIds {
            site_id: self.site_id.or(default.site_id),
            tickettype_id: self.tickettype_id.or(default.tickettype_id),
            priority_id: self.priority_id.or(default.priority_id),
            outcome_id: self.outcome_id.or(default.outcome_id),
        }
    }
}

/// A company's Autotask ids (each over the `[psa.autotask]` default when set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutotaskIds {
    /// The queue new tickets go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<u64>,
    /// Picklist values of a new ticket's `status` and `priority`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u64>,
    /// Picklist values of a note's `noteType` and `publish` (who may see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note_type: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<u64>,
}

impl AutotaskIds {
    /// These ids, each falling back to `default`'s.
    pub fn over(&self, default: &AutotaskIds) -> AutotaskIds {
        AutotaskIds {
            queue_id: self.queue_id.or(default.queue_id),
            status: self.status.or(default.status),
            priority: self.priority.or(default.priority),
            note_type: self.note_type.or(default.note_type),
            publish: self.publish.or(default.publish),
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
    /// The PSA's identifier of the company: ConnectWise `company.identifier`, a HaloPSA
    /// client or an Autotask company (its numeric id, or its name). None for `psa_kind = "none"`.
    #[serde(default)]
    pub psa_company: String,
    #[serde(default)]
    pub psa_kind: PsaKind,
    /// This company's HaloPSA ids, over the `[psa.halo]` defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halo: Option<HaloIds>,
    /// This company's Autotask ids, over the `[psa.autotask]` defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autotask: Option<AutotaskIds>,
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
    /// Who may grant access back: restore a run, restore a mailbox from a backup. Deny by
    /// default: empty allows no caller of a deployed trigger (only the CLI's own operator,
    /// `os-user:…`, whose power is the machine's). Entries as in `allowed_principals`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_principals: Vec<String>,
    /// Who may read who can open which mailbox (`GET /access`). Deny by default, as
    /// `restore_principals`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_principals: Vec<String>,
    /// Domains a requestor's address may have for the report to be mailed to it (the
    /// company's accepted domains, the MSP's own). The sender's domain is always one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report_domains: Vec<String>,
    /// Which security alerts start contain runs for this company (`[company.alerts]`); absent:
    /// the defaults of [`AlertSettings`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertSettings>,
    /// What a contain run does to the user's sign-in and consents first (`[company.contain]`);
    /// absent: the defaults of [`super::ContainSettings`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contain: Option<super::ContainSettings>,
    /// How long the permission index keeps snapshots and how old one may be for containment
    /// (`[company.index]`).
    #[serde(default, skip_serializing_if = "IndexSettings::is_default")]
    pub index: IndexSettings,
    /// Where else the run's outcome is posted besides the email (`[company.notify]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySettings>,
}

/// A company's Teams channel and webhook for run outcomes. The URLs carry tokens: they are
/// never logged or shown in a report.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// A Teams incoming webhook or Workflows webhook URL: an Adaptive Card per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_webhook_url: Option<String>,
    /// A webhook that gets the outcome as JSON, signed with the webhook secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

impl std::fmt::Debug for NotifySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |u: &Option<String>| u.as_ref().map(|_| "***");
        f.debug_struct("NotifySettings")
            .field("teams_webhook_url", &shown(&self.teams_webhook_url))
            .field("webhook_url", &shown(&self.webhook_url))
            .finish()
    }
}

impl NotifySettings {
    /// Each URL set is an absolute https URL (http only on loopback, for the simulator).
    fn validate(&self, company_id: &str) -> Result<(), InvalidRequest> {
        for (field, value) in [
            ("notify.teams_webhook_url", &self.teams_webhook_url),
            ("notify.webhook_url", &self.webhook_url),
        ] {
            let Some(value) = value else { continue };
            if let Some(why) = hook_url_error(value) {
                return Err(InvalidRequest::new(
                    field,
                    format!("{why} (company '{company_id}'); expected an https URL, e.g. https://hooks.example.com/revoke365 (http only on localhost)"),
                ));
            }
        }
        Ok(())
    }
}

/// Why `value` cannot be a hook URL, if it cannot (the URL itself is not repeated).
fn hook_url_error(value: &str) -> Option<String> {
    let url = match url::Url::parse(value.trim()) {
        Ok(url) => url,
        Err(e) => return Some(format!("not a URL: {e}")),
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Some("the URL has no host".into()),
    };
    match url.scheme() {
        "https" => None,
        "http" if loopback => None,
        scheme => Some(format!("scheme '{scheme}' is not allowed")),
    }
}

/// `8-4-4-4-12` hexadecimal digits, the form of an Entra tenant id.
fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Why `entry` cannot be in a principal list, if it cannot: blank (it names no one), only
/// stars (every caller), or a `*` before the end (it would be compared as text and match no
/// one, while reading as a wildcard).
fn principal_entry_error(entry: &str) -> Option<String> {
    if entry.is_empty() {
        return Some("an empty entry names no principal".into());
    }
    let prefix = entry.strip_suffix('*').unwrap_or(entry);
    if prefix.trim_end_matches('*').is_empty() {
        return Some(format!(
            "'{entry}' would let every caller act for the company"
        ));
    }
    if prefix.contains('*') {
        return Some(format!(
            "'{entry}' has a '*' before its end, which matches nothing: a '*' may only end a prefix"
        ));
    }
    None
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
    /// The company's alert settings, or the defaults.
    pub fn alert_settings(&self) -> AlertSettings {
        self.alerts.clone().unwrap_or_default()
    }

    /// The company's contain policy, or the defaults.
    pub fn contain_settings(&self) -> super::ContainSettings {
        self.contain.unwrap_or_default()
    }

    /// What the file format cannot say: the company id is one a request may name, every
    /// required value is there (not blank), the tenant id is a GUID, the sender and the
    /// recipients are addresses, and no list is a wildcard that would let everything in.
    /// Whether the sender and the PSA company exist is `revoke365 check`'s job.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        if self.company_id.trim().is_empty() {
            return Err(InvalidRequest::new("company_id", "must not be empty"));
        }
        validate_company_id(&self.company_id)?;
        for (field, value) in [
            ("company_name", &self.company_name),
            ("tenant_id", &self.tenant_id),
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
        // A company without a PSA has no company there to name.
        if self.psa_kind.has_tickets() && self.psa_company.trim().is_empty() {
            return Err(InvalidRequest::new(
                "psa_company",
                format!(
                    "must not be empty (company '{}', whose tickets are in {}; psa_kind = \"none\" for no PSA)",
                    self.company_id,
                    self.psa_kind.label()
                ),
            ));
        }
        if let Some(notify) = &self.notify {
            notify.validate(&self.company_id)?;
        }
        if let Some(alerts) = &self.alerts {
            alerts.validate(&self.company_id)?;
        }
        self.validate_formats()
    }

    /// The values with a format of their own, each error naming the field, the company and
    /// what is allowed.
    fn validate_formats(&self) -> Result<(), InvalidRequest> {
        let company = &self.company_id;
        if !is_guid(self.tenant_id.trim()) {
            return Err(InvalidRequest::new(
                "tenant_id",
                format!(
                    "'{}' is not a tenant id (company '{company}'); expected the tenant's GUID as the Entra admin center shows it, e.g. 3f6d2c1a-8b4e-4f7a-9c2d-1e5b7a9c0d4f",
                    self.tenant_id.trim()
                ),
            ));
        }
        let in_company = |e: InvalidRequest| {
            InvalidRequest::new(&e.field, format!("{} (company '{company}')", e.message))
        };
        validate_email("notification_sender", &self.notification_sender).map_err(in_company)?;
        for recipient in &self.m365_permission_notification_recipients {
            validate_email("m365_permission_notification_recipients", recipient)
                .map_err(in_company)?;
        }
        for domain in &self.report_domains {
            let name = domain.trim().trim_start_matches('@');
            if !is_domain_name(name) {
                return Err(InvalidRequest::new(
                    "report_domains",
                    format!(
                        "'{}' is not a domain (company '{company}'); expected a domain name such as acmecorp.com, each listed on its own: wildcards are not allowed",
                        domain.trim()
                    ),
                ));
            }
        }
        for (field, list) in [
            ("allowed_principals", &self.allowed_principals),
            ("restore_principals", &self.restore_principals),
            ("access_principals", &self.access_principals),
        ] {
            for entry in list {
                if let Some(why) = principal_entry_error(entry.trim()) {
                    return Err(InvalidRequest::new(
                        field,
                        format!(
                            "{why} (company '{company}'); list the principals allowed, e.g. os-user:jane or arn:aws:iam::123456789012:role/helpdesk (a prefix may end in '*')"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Where this company's new tickets go, in words: ConnectWise's board, or the PSA (HaloPSA
    /// and Autotask place them by the configured ids).
    pub fn new_ticket_place(&self) -> String {
        match self.psa_kind {
            PsaKind::Connectwise => format!("on board '{}'", self.m365_permission_ticket_board),
            kind => format!("in {}", kind.label()),
        }
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

    /// The org settings of a sandbox tenant fixture (`sim/README.md`): its `organization`,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertLevel;

    #[test]
    fn every_psa_takes_integer_ticket_ids_and_none_takes_no_ticket() {
        for kind in [PsaKind::Connectwise, PsaKind::Halo, PsaKind::Autotask] {
            assert_eq!(kind.ticket_id_error("48213"), None, "{kind:?}");
            let error = kind.ticket_id_error("T-1").unwrap();
            assert!(error.contains(kind.label()), "{error}");
        }
        let error = PsaKind::None.ticket_id_error("48213").unwrap();
        assert!(error.contains("no PSA"), "{error}");
    }

    #[test]
    fn a_companys_own_ids_win_over_the_defaults_one_by_one() {
        let default = HaloIds {
            outcome_id: Some(7),
            site_id: Some(1),
            ..HaloIds::default()
        };
        let own = HaloIds {
            outcome_id: Some(12),
            ..HaloIds::default()
        };
        let merged = own.over(&default);
        assert_eq!((merged.outcome_id, merged.site_id), (Some(12), Some(1)));
        let queue = AutotaskIds {
            queue_id: Some(8),
            ..AutotaskIds::default()
        };
        assert_eq!(AutotaskIds::default().over(&queue).queue_id, Some(8));
    }

    #[test]
    fn alert_settings_default_to_medium_and_up_and_name_a_misspelt_key() {
        let fixture = |alerts: serde_json::Value| {
            serde_json::json!({
                "tenant_id": "t",
                "organization": {"company_id": "acme", "company_name": "Acme",
                    "m365_permission_ticket_board": "b", "notification_sender": "it@acme.example",
                    "alerts": alerts}
            })
        };
        let org = OrgSettings::from_fixture(&fixture(serde_json::json!({"at_risk_level": "high"})))
            .unwrap();
        let settings = org.alert_settings();
        assert_eq!(settings.min_severity, AlertLevel::Medium);
        assert!(settings.defender && settings.entra_id_protection);
        let alert = |severity: &str, determination: Option<&str>| super::super::SecurityAlert {
            id: "a".into(),
            incident_id: None,
            title: String::new(),
            severity: severity.into(),
            status: "new".into(),
            determination: determination.map(str::to_string),
            classification: None,
            service_source: None,
            last_update: None,
            users: Vec::new(),
        };
        assert_eq!(settings.refuses(&alert("High", None)), None);
        assert!(settings.refuses(&alert("low", None)).is_some());
        assert!(settings.refuses(&alert("unknown", None)).is_some());
        assert!(settings
            .refuses(&alert("high", Some("notMalicious")))
            .is_some());
        let risky = |state: &str, level: &str| super::super::RiskyUser {
            id: "u".into(),
            user_principal_name: None,
            risk_level: level.into(),
            risk_state: state.into(),
            risk_last_updated: None,
        };
        assert!(settings.admits_risky_user(&risky("confirmedCompromised", "low")));
        assert!(settings.admits_risky_user(&risky("atRisk", "high")));
        assert!(!settings.admits_risky_user(&risky("atRisk", "medium")));
        assert!(!settings.admits_risky_user(&risky("remediated", "high")));
        let misspelt =
            OrgSettings::from_fixture(&fixture(serde_json::json!({"min_severty": "high"})))
                .unwrap_err();
        assert!(misspelt.contains("min_severty"), "{misspelt}");
    }

    #[test]
    fn alert_caps_default_to_five_and_twenty_and_bad_values_name_the_company_and_field() {
        let settings = AlertSettings::default();
        assert_eq!(
            (
                settings.max_contain_per_alert,
                settings.max_contain_per_hour
            ),
            (5, 20)
        );
        let org = |alerts: serde_json::Value| {
            let mut org = OrgSettings::from_fixture(&serde_json::json!({
                "tenant_id": "3f6d2c1a-8b4e-4f7a-9c2d-1e5b7a9c0d4f",
                "organization": {"company_id": "acme", "company_name": "Acme",
                    "psa_kind": "none", "m365_permission_ticket_board": "b",
                    "notification_sender": "it@acme.example"}
            }))
            .unwrap();
            org.alerts = Some(serde_json::from_value(alerts).unwrap());
            org
        };
        let ok = org(serde_json::json!({"never_contain": ["BreakGlass@acme.example"]}));
        ok.validate().unwrap();
        assert!(ok
            .alert_settings()
            .never_contains(" breakglass@ACME.example"));
        assert!(!ok.alert_settings().never_contains("ceo@acme.example"));
        for (alerts, field) in [
            (
                serde_json::json!({"max_contain_per_alert": 0}),
                "alerts.max_contain_per_alert",
            ),
            (
                serde_json::json!({"max_contain_per_alert": 1001}),
                "alerts.max_contain_per_alert",
            ),
            (
                serde_json::json!({"max_contain_per_hour": 0}),
                "alerts.max_contain_per_hour",
            ),
            (
                serde_json::json!({"never_contain": ["not-an-address"]}),
                "alerts.never_contain",
            ),
        ] {
            let e = org(alerts).validate().unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.message.contains("company 'acme'"), "{e}");
        }
    }

    /// The sandbox reads a fixture's company without `validate` (its tenant id is the
    /// simulator's): each one still holds to what a config's company must be.
    #[test]
    fn every_fixture_company_passes_the_config_rules() {
        let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut checked = 0;
        for entry in std::fs::read_dir(events).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with("-tenant.json") {
                continue;
            }
            let fixture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let org = OrgSettings::from_fixture(&fixture).unwrap();
            org.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
        assert!(checked >= 9, "{checked} fixtures");
    }

    /// Each value a run cannot use is refused with its field and the company named.
    #[test]
    fn validate_refuses_each_value_a_run_cannot_use_naming_its_field() {
        let fixture = serde_json::json!({
            "tenant_id": "3f6d2c1a-8b4e-4f7a-9c2d-1e5b7a9c0d4f",
            "organization": {"company_id": "acme", "company_name": "Acme",
                "m365_permission_ticket_board": "b", "notification_sender": "it@acme.example",
                "m365_permission_notification_recipients": ["secops@msp.example"],
                "report_domains": ["acme.example"],
                "allowed_principals": ["arn:aws:iam::111122223333:role/Helpdesk", "hmac:sentinel*"]}
        });
        let good = OrgSettings::from_fixture(&fixture).unwrap();
        good.validate().unwrap();
        type Change = fn(&mut OrgSettings);
        let cases: [(Change, &str, &str); 11] = [
            (
                |o| o.tenant_id = "acme.onmicrosoft.com".into(),
                "tenant_id",
                "GUID",
            ),
            (
                |o| o.notification_sender = "it".into(),
                "notification_sender",
                "email address",
            ),
            (
                |o| {
                    o.m365_permission_notification_recipients
                        .push(String::new())
                },
                "m365_permission_notification_recipients",
                "must not be empty",
            ),
            (
                |o| o.report_domains.push("*".into()),
                "report_domains",
                "wildcards",
            ),
            (
                |o| o.report_domains.push("*.acme.example".into()),
                "report_domains",
                "wildcards",
            ),
            (
                |o| o.report_domains.push(" ".into()),
                "report_domains",
                "not a domain",
            ),
            (
                |o| o.allowed_principals.push("*".into()),
                "allowed_principals",
                "every caller",
            ),
            (
                |o| o.restore_principals.push("**".into()),
                "restore_principals",
                "every caller",
            ),
            (
                |o| o.access_principals.push(" ".into()),
                "access_principals",
                "empty entry",
            ),
            (
                |o| {
                    o.restore_principals
                        .push("arn:aws:iam::*:role/Helpdesk".into())
                },
                "restore_principals",
                "before its end",
            ),
            (
                |o| o.access_principals.push("".into()),
                "access_principals",
                "empty entry",
            ),
        ];
        for (change, field, says) in cases {
            let mut org = good.clone();
            change(&mut org);
            let e = org.validate().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains(says), "{field}: {}", e.message);
            assert!(e.message.contains("company 'acme'"), "{}", e.message);
        }
    }

    #[test]
    fn kinds_are_named_in_snake_case() {
        let kinds: Vec<PsaKind> =
            serde_json::from_str(r#"["connectwise","halo","autotask","none"]"#).unwrap();
        assert_eq!(
            kinds,
            [
                PsaKind::Connectwise,
                PsaKind::Halo,
                PsaKind::Autotask,
                PsaKind::None
            ]
        );
    }
}
