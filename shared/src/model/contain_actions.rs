//! A contain run's identity actions (`[company.contain]`, the org item's `contain`): which ones
//! a company wants, what each did (`contain_actions` in the result), which delegated scopes
//! reach a mailbox, and the honest clock — when each change is in effect, by Microsoft's own
//! documents (docs/containment.md cites them).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What a contain run does to the user's identity before it touches any mailbox grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainSettings {
    /// `POST /users/{id}/revokeSignInSessions`: every refresh token and browser session of
    /// the user stops working.
    pub revoke_sessions: bool,
    /// `PATCH /users/{id}` `{"accountEnabled": false}`: nobody signs in as the user.
    pub disable_sign_in: bool,
    /// Deletes the user's own delegated consents (`oauth2PermissionGrants`, `consentType`
    /// `Principal`) whose scope reaches mail ([`is_mail_scope`]); other consents stay.
    pub remove_mail_consents: bool,
    /// `POST /identityProtection/riskyUsers/confirmCompromised` (Entra ID P2): the user's risk
    /// becomes high, for the tenant's risk-based Conditional Access.
    pub confirm_compromised: bool,
}

impl Default for ContainSettings {
    fn default() -> Self {
        ContainSettings {
            revoke_sessions: true,
            disable_sign_in: false,
            remove_mail_consents: true,
            confirm_compromised: false,
        }
    }
}

impl ContainSettings {
    /// The actions enabled, in the order a contain run does them.
    pub fn enabled(&self) -> Vec<ContainActionKind> {
        [
            (self.revoke_sessions, ContainActionKind::RevokeSessions),
            (self.disable_sign_in, ContainActionKind::DisableSignIn),
            (self.remove_mail_consents, ContainActionKind::RemoveConsent),
            (
                self.confirm_compromised,
                ContainActionKind::ConfirmCompromised,
            ),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect()
    }

    /// `revoke365 check`: whether the app's Graph roles (`None`: unreadable) cover every
    /// enabled action — `Ok` what is granted, `Err` what is missing and what it means.
    pub fn roles_verdict(&self, granted: Option<&[String]>) -> Option<Result<String, String>> {
        let enabled = self.enabled();
        if enabled.is_empty() {
            return Some(Ok("no contain action is enabled ([company.contain])".into()));
        }
        let granted = granted?;
        let has = |r: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(r));
        let missing: Vec<String> = enabled
            .iter()
            .filter(|k| !has(k.graph_role()) && !k.broader_roles().iter().any(|r| has(r)))
            .map(|k| format!("{} (for {})", k.graph_role(), k.as_str()))
            .collect();
        if missing.is_empty() {
            let names: Vec<String> = enabled
                .iter()
                .map(|k| format!("{} ({})", k.graph_role(), k.as_str()))
                .collect();
            return Some(Ok(format!("granted: {}", names.join(", "))));
        }
        Some(Err(format!(
            "the app lacks the Graph application permissions {}: a contain run does the other actions and reports these failed; add them under API permissions and grant admin consent, or turn the actions off in [company.contain]",
            missing.join(", ")
        )))
    }
}

/// One identity action of a contain run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainActionKind {
    RevokeSessions,
    DisableSignIn,
    RemoveConsent,
    ConfirmCompromised,
}

impl ContainActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainActionKind::RevokeSessions => "revoke_sessions",
            ContainActionKind::DisableSignIn => "disable_sign_in",
            ContainActionKind::RemoveConsent => "remove_consent",
            ContainActionKind::ConfirmCompromised => "confirm_compromised",
        }
    }

    /// Broader Graph application permissions that include [`Self::graph_role`].
    pub fn broader_roles(self) -> &'static [&'static str] {
        match self {
            ContainActionKind::RevokeSessions | ContainActionKind::DisableSignIn => {
                &["User.ReadWrite.All", "Directory.ReadWrite.All"]
            }
            ContainActionKind::RemoveConsent => &["Directory.ReadWrite.All"],
            ContainActionKind::ConfirmCompromised => &[],
        }
    }

    /// The least privileged Graph application permission the action needs (Microsoft's
    /// permission reference; `remove_consent` also reads the grants and the app's name).
    pub fn graph_role(self) -> &'static str {
        match self {
            ContainActionKind::RevokeSessions => "User.RevokeSessions.All",
            ContainActionKind::DisableSignIn => "User.EnableDisableAccount.All",
            ContainActionKind::RemoveConsent => "DelegatedPermissionGrant.ReadWrite.All",
            ContainActionKind::ConfirmCompromised => "IdentityRiskyUser.ReadWrite.All",
        }
    }
}

/// What became of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainActionStatus {
    Done,
    Failed,
    /// Not done, and not needed or not possible (e.g. the account was disabled already).
    Skipped,
    /// A dry run: what a run would do.
    WouldDo,
    /// A restore put it back (verified by reading it again).
    Restored,
    /// A restore found it as the run had found it: nothing to do.
    AlreadyPresent,
    /// A restore cannot undo it (revoked sessions stay revoked: the user signs in again).
    NotRestorable,
}

/// One entry of the result's `contain_actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainAction {
    pub action: ContainActionKind,
    pub status: ContainActionStatus,
    /// When the call was answered (a dry run: when it was planned).
    pub at: DateTime<Utc>,
    /// When the change is in effect for every app (see [`effective_by`]); none unless done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_by: Option<DateTime<Utc>>,
    /// A consent: the client app's service principal (object id) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// ... its display name ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// ... and the scope the grant held (all of it is removed with the grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The grant's id, resource and consent type: what a restore re-creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// Why it failed or was skipped, or what else to do (a synced account: "disable it in AD too").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A 403: the Graph application permission the action needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_role: Option<String>,
}

impl ContainAction {
    pub fn new(
        action: ContainActionKind,
        status: ContainActionStatus,
        at: DateTime<Utc>,
    ) -> ContainAction {
        ContainAction {
            action,
            status,
            at,
            effective_by: (status == ContainActionStatus::Done).then(|| effective_by(action, at)),
            client_id: None,
            app_name: None,
            scope: None,
            grant_id: None,
            resource_id: None,
            consent_type: None,
            principal_id: None,
            note: None,
            error: None,
            missing_role: None,
        }
    }

    pub fn failed(action: ContainActionKind, at: DateTime<Utc>, error: String) -> ContainAction {
        ContainAction {
            error: Some(error),
            ..ContainAction::new(action, ContainActionStatus::Failed, at)
        }
    }
}

/// What an identity action changed, as its audit record's `detail` holds it (JSON): the
/// before-state a restore puts back, and what it may not (sessions are not restorable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum IdentityChange {
    SessionsRevoked {
        user_id: String,
    },
    /// `account_enabled_before`: what `accountEnabled` was when this run read it; a restore
    /// enables the account again only when it was `true` and this run disabled it.
    SignInDisabled {
        user_id: String,
        account_enabled_before: Option<bool>,
    },
    ConsentRemoved {
        grant_id: String,
        client_id: String,
        app_name: Option<String>,
        consent_type: String,
        principal_id: Option<String>,
        resource_id: String,
        scope: String,
    },
    ConfirmedCompromised {
        user_id: String,
    },
}

impl IdentityChange {
    pub fn to_detail(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The change an identity audit record's `detail` holds, if it holds one.
    pub fn from_detail(detail: &str) -> Option<IdentityChange> {
        serde_json::from_str(detail).ok()
    }
}

/// Continuous Access Evaluation: CAE-capable apps (Outlook, Teams, SharePoint, Exchange
/// Online) act on a revocation, a disabled account or high user risk within this.
pub const CAE_WINDOW: Duration = Duration::minutes(15);
/// Other apps hold an access token until it expires: about an hour (60-90 minutes).
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::minutes(60);
/// Exchange Online applies mailbox-permission changes within up to 60 minutes.
pub const MAILBOX_PERMISSION_LATENCY: Duration = Duration::minutes(60);

/// When an action done at `at` holds for every app: access tokens issued before it stay
/// valid for their lifetime (refresh tokens, sessions and consents stop at once; CAE-capable
/// apps refuse sooner). Confirming a compromise raises the risk, a CAE critical event.
pub fn effective_by(action: ContainActionKind, at: DateTime<Utc>) -> DateTime<Utc> {
    match action {
        ContainActionKind::ConfirmCompromised => at + CAE_WINDOW,
        _ => at + ACCESS_TOKEN_LIFETIME,
    }
}

/// When a mailbox grant removed at `at` is in effect.
pub fn grant_effective_by(at: DateTime<Utc>) -> DateTime<Utc> {
    at + MAILBOX_PERMISSION_LATENCY
}

/// Delegated scopes that read or send mail or reach the mailbox. A scope matches by its name
/// before the first `.` (`Mail.ReadWrite.Shared` is `Mail`) or whole (`EWS.AccessAsUser.All`,
/// `full_access_as_user`), in any case.
const MAIL_SCOPE_FAMILIES: &[&str] = &["mail", "mailboxsettings", "calendars", "contacts"];
const MAIL_SCOPES: &[&str] = &[
    "ews.accessasuser.all",
    "imap.accessasuser.all",
    "pop.accessasuser.all",
    "smtp.send",
    "smtp.sendasapp",
    "full_access_as_user",
    "exchangewebservices.accessasuser.all",
    "mailboxfolder.read",
    "mailboxfolder.readwrite",
    "mailboxitem.read",
    "mailboxitem.importexport",
    "eas.accessasuser.all",
    "exchange.manage",
];

/// Whether one delegated scope (as a grant's `scope` lists it) reaches mail.
pub fn is_mail_scope(scope: &str) -> bool {
    let scope = scope.trim().to_ascii_lowercase();
    // Exchange's resource also writes its scopes as URLs (`https://outlook.office.com/Mail.Read`).
    let scope = scope.rsplit('/').next().unwrap_or(&scope);
    let family = scope.split('.').next().unwrap_or(scope);
    MAIL_SCOPES.contains(&scope) || (scope.contains('.') && MAIL_SCOPE_FAMILIES.contains(&family))
}

/// The mail-reaching scopes of a grant's space-separated `scope`.
pub fn mail_scopes(scope: &str) -> Vec<&str> {
    scope
        .split_whitespace()
        .filter(|s| is_mail_scope(s))
        .collect()
}

/// The latest `effective_by` of what a run did: when the attacker's access ends everywhere.
pub fn access_ends_by<'a>(
    actions: &[ContainAction],
    grants_removed_at: impl IntoIterator<Item = &'a DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    actions
        .iter()
        .filter_map(|a| a.effective_by)
        .chain(
            grants_removed_at
                .into_iter()
                .map(|at| grant_effective_by(*at)),
        )
        .max()
}

/// The clock in words, for the table, the note and the email: "sessions revoked 14:02:07 UTC
/// — Outlook and Teams refuse the attacker within minutes, other apps within the hour; every
/// mailbox permission removed, in effect by 15:02 UTC". `None` when the run did nothing
/// to say it of.
pub fn clock_sentence(
    actions: &[ContainAction],
    grants_removed: usize,
    access_ends_by: Option<DateTime<Utc>>,
) -> Option<String> {
    let hm = |t: DateTime<Utc>| t.format("%H:%M UTC").to_string();
    let mut parts = Vec::new();
    let done = |kind| {
        actions
            .iter()
            .find(|a| a.action == kind && a.status == ContainActionStatus::Done)
    };
    let sign_in = [
        (ContainActionKind::RevokeSessions, "sessions revoked"),
        (ContainActionKind::DisableSignIn, "sign-in disabled"),
    ]
    .into_iter()
    .filter_map(|(kind, words)| {
        done(kind).map(|a| format!("{words} {}", a.at.format("%H:%M:%S UTC")))
    })
    .collect::<Vec<_>>();
    if !sign_in.is_empty() {
        parts.push(format!(
            "{} — Outlook, Teams and SharePoint refuse the attacker within minutes (at most 15), other apps when their access token expires (about an hour)",
            sign_in.join(", ")
        ));
    }
    let consents: Vec<&ContainAction> = actions
        .iter()
        .filter(|a| {
            a.action == ContainActionKind::RemoveConsent && a.status == ContainActionStatus::Done
        })
        .collect();
    if let Some(last) = consents.iter().filter_map(|a| a.effective_by).max() {
        parts.push(format!(
            "{} mail app consent(s) removed — no new tokens for them, tokens already issued end by {}",
            consents.len(),
            hm(last)
        ));
    }
    if grants_removed > 0 {
        if let Some(end) = access_ends_by {
            parts.push(format!(
                "every mailbox permission removed, in effect by {} (Exchange applies permission changes within 60 minutes)",
                hm(end)
            ));
        }
    }
    if parts.is_empty() {
        return None;
    }
    let mut sentence = parts.join("; ");
    if let Some(end) = access_ends_by {
        sentence.push_str(&format!(". Access ends by {}.", hm(end)));
    }
    Some(sentence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_scopes_are_told_from_others() {
        for s in [
            "Mail.Read",
            "mail.readwrite",
            "Mail.Send.Shared",
            "MailboxSettings.ReadWrite",
            "Calendars.Read",
            "Contacts.ReadWrite",
            "EWS.AccessAsUser.All",
            "IMAP.AccessAsUser.All",
            "POP.AccessAsUser.All",
            "SMTP.Send",
            "full_access_as_user",
            "https://outlook.office.com/Mail.Read",
        ] {
            assert!(is_mail_scope(s), "{s}");
        }
        for s in [
            "User.Read",
            "openid",
            "profile",
            "offline_access",
            "Files.Read",
            "email",
            "Mail",
        ] {
            assert!(!is_mail_scope(s), "{s}");
        }
        assert_eq!(
            mail_scopes("openid User.Read Mail.Read offline_access"),
            vec!["Mail.Read"]
        );
    }

    #[test]
    fn the_clock_says_when_access_ends() {
        let at: DateTime<Utc> = "2026-12-07T14:02:07Z".parse().unwrap();
        let revoke = ContainAction::new(
            ContainActionKind::RevokeSessions,
            ContainActionStatus::Done,
            at,
        );
        assert_eq!(revoke.effective_by, Some(at + Duration::minutes(60)));
        let end = access_ends_by(
            std::slice::from_ref(&revoke),
            [&(at + Duration::seconds(2))],
        );
        assert_eq!(end, Some(at + Duration::seconds(2) + Duration::minutes(60)));
        let s = clock_sentence(&[revoke], 3, end).unwrap();
        assert!(
            s.starts_with("sessions revoked 14:02:07 UTC — Outlook"),
            "{s}"
        );
        assert!(
            s.contains("every mailbox permission removed, in effect by 15:02 UTC"),
            "{s}"
        );
        let dry = ContainAction::new(
            ContainActionKind::RevokeSessions,
            ContainActionStatus::WouldDo,
            at,
        );
        assert_eq!(dry.effective_by, None);
        assert_eq!(clock_sentence(&[dry], 0, None), None);
    }

    #[test]
    fn check_names_the_permissions_of_enabled_actions_only() {
        let policy = ContainSettings::default();
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = roles(&[
            "User.RevokeSessions.All",
            "DelegatedPermissionGrant.ReadWrite.All",
        ]);
        assert!(policy.roles_verdict(Some(&all)).unwrap().is_ok());
        let why = policy
            .roles_verdict(Some(&roles(&["User.RevokeSessions.All"])))
            .unwrap()
            .unwrap_err();
        assert!(
            why.contains("DelegatedPermissionGrant.ReadWrite.All (for remove_consent)"),
            "{why}"
        );
        assert!(!why.contains("User.EnableDisableAccount.All"), "{why}");
        let broad = roles(&["Directory.ReadWrite.All"]);
        assert!(policy.roles_verdict(Some(&broad)).unwrap().is_ok());
        assert_eq!(policy.roles_verdict(None), None);
    }

    #[test]
    fn settings_default_and_refuse_unknown_keys() {
        let s: ContainSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, ContainSettings::default());
        assert!(s.revoke_sessions && s.remove_mail_consents && !s.disable_sign_in);
        let e = serde_json::from_str::<ContainSettings>(r#"{"revoke_session": true}"#).unwrap_err();
        assert!(e.to_string().contains("revoke_session"), "{e}");
        let e =
            serde_json::from_str::<ContainSettings>(r#"{"disable_sign_in": "yes"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
    }
}
