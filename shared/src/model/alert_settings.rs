//! Which alerts start contain runs for a company (`[company.alerts]`, the org item's `alerts`):
//! the sources to poll, the levels that count, and the caps on how many users an alert may
//! contain.

use super::{validate_email, InvalidRequest, RiskyUser, SecurityAlert, SentinelIncident};
use serde::{Deserialize, Serialize};

/// A level of Defender's `severity` or Entra ID Protection's `riskLevel`, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case", ascii_case_insensitive)]
pub enum AlertLevel {
    Informational,
    Low,
    Medium,
    High,
}

impl AlertLevel {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Graph's value (`high`, `Medium`, ...); `unknown`, `hidden`, `none` are no level.
    pub fn parse(value: &str) -> Option<AlertLevel> {
        value.trim().parse().ok()
    }
}

/// Determinations of a Defender alert that say it is no compromise: such alerts start nothing.
pub const BENIGN_DETERMINATIONS: &[&str] = &[
    "notMalicious",
    "securityTesting",
    "securityPersonnel",
    "confirmedActivity",
    "lineOfBusinessApplication",
];

/// Which alerts start contain runs for a company, and where the poller looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// Poll Microsoft Defender XDR alerts (Graph `security/alerts_v2`,
    /// `SecurityAlert.Read.All`).
    pub defender: bool,
    /// Poll Entra ID Protection risky users (`IdentityRiskyUser.Read.All`, Entra ID P2).
    pub entra_id_protection: bool,
    /// The lowest Defender alert severity that starts a run.
    pub min_severity: AlertLevel,
    /// Defender determinations that start nothing (Graph's values, e.g. `notMalicious`).
    pub ignore_determinations: Vec<String>,
    /// Risky users still `atRisk` (not confirmed) start a run at this `riskLevel` or above;
    /// absent: only `confirmedCompromised` users do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_risk_level: Option<AlertLevel>,
    /// How far back the first poll of a company (no watermark yet) looks, in hours.
    pub first_poll_hours: u32,
    /// At most this many users of one alert are contained automatically; the further ones
    /// await an operator's approval (a phishing alert naming 500 recipients contains 5).
    pub max_contain_per_alert: u32,
    /// At most this many contain runs are started from alerts per company and clock hour,
    /// across alerts and every poller and route; the further users await approval.
    pub max_contain_per_hour: u32,
    /// Addresses never contained automatically (break-glass accounts, executives): an alert
    /// naming one reports it, and an operator decides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub never_contain: Vec<String>,
}

/// The bounds of [`AlertSettings::max_contain_per_alert`] and `max_contain_per_hour`.
pub const MAX_CONTAIN_PER_ALERT: std::ops::RangeInclusive<u32> = 1..=1000;
pub const MAX_CONTAIN_PER_HOUR: std::ops::RangeInclusive<u32> = 1..=10_000;

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            defender: true,
            entra_id_protection: true,
            min_severity: AlertLevel::Medium,
            ignore_determinations: BENIGN_DETERMINATIONS
                .iter()
                .map(|d| d.to_string())
                .collect(),
            at_risk_level: None,
            first_poll_hours: 24,
            max_contain_per_alert: 5,
            max_contain_per_hour: 20,
            never_contain: Vec::new(),
        }
    }
}

impl AlertSettings {
    /// The caps within their bounds and every `never_contain` entry an address; errors name
    /// the company and the field.
    pub fn validate(&self, company_id: &str) -> Result<(), InvalidRequest> {
        for (field, value, bounds) in [
            (
                "alerts.max_contain_per_alert",
                self.max_contain_per_alert,
                MAX_CONTAIN_PER_ALERT,
            ),
            (
                "alerts.max_contain_per_hour",
                self.max_contain_per_hour,
                MAX_CONTAIN_PER_HOUR,
            ),
        ] {
            if !bounds.contains(&value) {
                return Err(InvalidRequest::new(
                    field,
                    format!(
                        "{value} is out of range (company '{company_id}'); allowed: {} to {}",
                        bounds.start(),
                        bounds.end()
                    ),
                ));
            }
        }
        for address in &self.never_contain {
            validate_email("alerts.never_contain", address).map_err(|e| {
                InvalidRequest::new(&e.field, format!("{} (company '{company_id}')", e.message))
            })?;
        }
        Ok(())
    }

    /// Whether `address` is one the company never contains automatically (in any case).
    pub fn never_contains(&self, address: &str) -> bool {
        let address = address.trim();
        self.never_contain
            .iter()
            .any(|n| n.trim().eq_ignore_ascii_case(address))
    }

    /// Why an alert of this severity starts nothing, if it does not (`None`: no severity
    /// given, as a Sentinel payload may omit it).
    pub fn below_min_severity(&self, severity: &str) -> Option<String> {
        match AlertLevel::parse(severity) {
            Some(level) if level >= self.min_severity => None,
            _ => Some(format!(
                "severity '{severity}' is below the company's min_severity ({})",
                self.min_severity.as_str()
            )),
        }
    }

    /// Why a Defender alert starts nothing, if it does not: a low severity, a benign
    /// determination, a false-positive or benign classification, or a resolved status.
    pub fn refuses(&self, alert: &SecurityAlert) -> Option<String> {
        if let Some(why) = self.below_min_severity(&alert.severity) {
            return Some(why);
        }
        if let Some(d) = alert.determination.as_deref().filter(|d| {
            self.ignore_determinations
                .iter()
                .any(|i| i.eq_ignore_ascii_case(d))
        }) {
            return Some(format!("determination '{d}' is one the company ignores"));
        }
        if let Some(c) = alert.classification.as_deref().filter(|c| {
            c.eq_ignore_ascii_case("falsePositive")
                || c.eq_ignore_ascii_case("informationalExpectedActivity")
        }) {
            return Some(format!("classified '{c}'"));
        }
        // Someone already closed it: containing now would act on a finished investigation.
        if alert.status.eq_ignore_ascii_case("resolved") {
            return Some("status 'resolved'".into());
        }
        None
    }

    /// Whether a risky user starts a run: confirmed compromised, or at risk at the configured
    /// level or above.
    pub fn admits_risky_user(&self, user: &RiskyUser) -> bool {
        if user.risk_state.eq_ignore_ascii_case("confirmedCompromised") {
            return true;
        }
        match (self.at_risk_level, AlertLevel::parse(&user.risk_level)) {
            (Some(min), Some(level)) => {
                user.risk_state.eq_ignore_ascii_case("atRisk") && level >= min
            }
            _ => false,
        }
    }
}

impl SentinelIncident {
    /// Why this incident starts nothing, if it does not: closed, classified benign or false
    /// positive, or below the company's `min_severity`.
    pub fn ignored_by(&self, settings: &AlertSettings) -> Option<String> {
        if self.status.as_deref() == Some("closed") {
            return Some("the incident's status is Closed".into());
        }
        if let Some(c) = self
            .classification
            .as_deref()
            .filter(|c| matches!(*c, "benignpositive" | "falsepositive"))
        {
            let named = if c == "benignpositive" {
                "BenignPositive"
            } else {
                "FalsePositive"
            };
            return Some(format!("the incident is classified {named}"));
        }
        settings.below_min_severity(&self.severity)
    }
}
