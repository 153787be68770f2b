//! The sandbox tenant fixture (its schema and the simulator extensions are in
//! `sim/README.md`), and the deterministic derivations (object ids, aliases,
//! distinguished names) the simulator computes from it.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::snapshot::MailboxForwarding;

/// A tenant loaded from `events/*.json`. Unknown fields are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fixture {
    pub tenant_id: String,
    pub organization: Organization,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub mailboxes: Vec<Mailbox>,
    /// Mail contacts (`RecipientTypeDetails: MailContact`).
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub psa_tickets: Vec<PsaTicket>,
    /// Microsoft Defender XDR alerts (Graph `security/alerts_v2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_alerts: Vec<SecurityAlert>,
    /// Entra ID Protection risky users (Graph `identityProtection/riskyUsers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risky_users: Vec<RiskyUser>,
    /// Delegated consents (`oauth2PermissionGrants`) users gave apps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<crate::identity::ConsentFixture>,
    #[serde(default)]
    pub sim: SimSettings,
}

// ---- security alerts (alerts_v2, riskyUsers) ------------------------------

/// A Defender XDR alert, served in Graph's `alerts_v2` shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityAlert {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    #[serde(default = "alert_title")]
    pub title: String,
    /// `informational`, `low`, `medium`, `high`, `unknown`.
    #[serde(default = "medium")]
    pub severity: String,
    /// `new`, `inProgress`, `resolved`.
    #[serde(default = "new_status")]
    pub status: String,
    /// Graph's `determination` (e.g. `compromisedAccount`, `notMalicious`); absent: `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub determination: Option<String>,
    /// `truePositive`, `falsePositive`, `informationalExpectedActivity`; absent: `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    #[serde(default = "defender_service")]
    pub service_source: String,
    /// How long before the simulator started the alert last changed (its
    /// `lastUpdateDateTime`), in minutes.
    #[serde(default = "five")]
    pub minutes_ago: i64,
    #[serde(default)]
    pub evidence: Vec<AlertEvidence>,
}

/// One evidence of an alert that names a user: `user` (a `userEvidence`) or `mailbox` (a
/// `mailboxEvidence`), with its `roles` (`compromised`, `suspicious`, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertEvidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// An Entra ID Protection risky user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RiskyUser {
    /// The user's UPN (a user of the tenant).
    pub user: String,
    /// `low`, `medium`, `high`, `hidden`, `none`.
    #[serde(default = "high")]
    pub risk_level: String,
    /// `atRisk`, `confirmedCompromised`, `remediated`, `dismissed`, `confirmedSafe`, `none`.
    #[serde(default = "at_risk")]
    pub risk_state: String,
    /// How long before the simulator started the risk last changed, in minutes.
    #[serde(default = "five")]
    pub minutes_ago: i64,
}

fn alert_title() -> String {
    "Suspicious inbox forwarding rule".into()
}
fn medium() -> String {
    "medium".into()
}
fn high() -> String {
    "high".into()
}
fn new_status() -> String {
    "new".into()
}
fn at_risk() -> String {
    "atRisk".into()
}
fn defender_service() -> String {
    "microsoftDefenderForOffice365".into()
}
fn five() -> i64 {
    5
}

/// Organizational variables of the company that owns the tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Organization {
    pub company_id: String,
    pub company_name: String,
    pub m365_permission_ticket_board: String,
    #[serde(default)]
    pub m365_permission_removal_scope: Vec<String>,
    #[serde(default)]
    pub m365_permission_notification_recipients: Vec<String>,
    pub notification_sender: String,
    /// The PSA's company identifier; defaults to `company_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psa_company: Option<String>,
}

impl Organization {
    pub fn psa_company(&self) -> &str {
        self.psa_company.as_deref().unwrap_or(&self.company_id)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub upn: String,
    pub display_name: String,
    /// Primary SMTP address; defaults to the UPN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    /// Exchange `Name`; defaults to the local part of the UPN (or the object id
    /// with `sim.guid_names`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub recipient_type: UserType,
    /// Defaults to `name`, else the local part of the UPN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sam_account_name: Option<String>,
    /// Former SIDs (`S-1-5-21-...`); identity resolution accepts them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sid_history: Vec<String>,
    /// Defaults to `["SMTP:<mail>"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_addresses: Option<Vec<String>>,
    /// Defaults to true (false for a shared mailbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_enabled: Option<bool>,
    /// The last sign-in Graph's `signInActivity` shows (RFC 3339); none: never signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sign_in: Option<chrono::DateTime<chrono::Utc>>,
    /// Synced from on-premises AD (Graph's `onPremisesSyncEnabled: true`); absent: cloud-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_premises_sync_enabled: Option<bool>,
    /// Send As on a `MailUser` (a mailbox's Send As is listed in `mailboxes[]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_as: Vec<SendAsEntry>,
}

/// What Exchange knows of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub enum UserType {
    /// A user with an Exchange Online mailbox (listed in `mailboxes[]` or implied).
    #[default]
    UserMailbox,
    /// A mail-enabled user without an Exchange Online mailbox.
    MailUser,
    /// No Exchange recipient at all (only `Get-User` and Graph know it).
    User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    /// Defaults to the lowercased name, spaces as `-`, at the domain of the first
    /// user's mail. A `SecurityGroup` has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: GroupType,
    #[serde(default)]
    pub members: Vec<String>,
    /// Send As on the group itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_as: Vec<SendAsEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub enum GroupType {
    /// Mail-enabled security group.
    #[default]
    MailUniversalSecurityGroup,
    /// Distribution group.
    MailUniversalDistributionGroup,
    /// Microsoft 365 group.
    GroupMailbox,
    /// Not mail-enabled: a Graph group, not an Exchange recipient.
    SecurityGroup,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::MailUniversalSecurityGroup => "MailUniversalSecurityGroup",
            GroupType::MailUniversalDistributionGroup => "MailUniversalDistributionGroup",
            GroupType::GroupMailbox => "GroupMailbox",
            GroupType::SecurityGroup => "SecurityGroup",
        }
    }

    /// Is a group of this type an Exchange recipient?
    pub fn is_recipient(self) -> bool {
        self != GroupType::SecurityGroup
    }
}

/// A mail contact: an outside address in the address book.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    pub address: String,
    pub display_name: String,
    /// Exchange `Name`; defaults to the display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_as: Vec<SendAsEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub enum MailboxType {
    #[default]
    UserMailbox,
    SharedMailbox,
}

impl MailboxType {
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxType::UserMailbox => "UserMailbox",
            MailboxType::SharedMailbox => "SharedMailbox",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mailbox {
    pub upn: String,
    /// Defaults to the user's display name, else the alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: MailboxType,
    #[serde(default)]
    pub full_access: Vec<FullAccessEntry>,
    #[serde(default)]
    pub send_as: Vec<SendAsEntry>,
    #[serde(default)]
    pub send_on_behalf: Vec<String>,
    #[serde(default)]
    pub calendar: Vec<CalendarEntry>,
    /// Localized name of the default calendar folder (default `Calendar`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_folder_name: Option<String>,
    /// Forwarding on the mailbox: `{"smtp_address", "address", "deliver_to_mailbox_and_forward"}`.
    #[serde(default, skip_serializing_if = "MailboxForwarding::is_empty")]
    pub forwarding: MailboxForwarding,
    /// Inbox rules, first rule first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbox_rules: Vec<InboxRuleEntry>,
    /// The language of the well-known folders' names (`en`, the default, or `de`): Exchange
    /// names them in the mailbox's language (`Posteingang`, `Kalender`, `Aufgaben`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Folders beyond the well-known ones, and the permissions on any folder but the default
    /// calendar (whose permissions are `calendar`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<FolderEntry>,
}

/// A folder of a fixture mailbox: a well-known folder named as the mailbox's language names it,
/// or a folder of the user's (its parents are made as needed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FolderEntry {
    /// The path from the mailbox root, `\`-separated, names as shown: `\Inbox\Projects`,
    /// `\Posteingang`, `\Calendar\Board meetings` (a folder under the calendar is a
    /// secondary calendar). A `/` in a name is written as is.
    pub path: String,
    #[serde(default)]
    pub permissions: Vec<FolderPermissionEntry>,
    /// Exchange refuses every change to this folder's permissions
    /// (`CannotChangePermissionsOnFolderException`).
    #[serde(default)]
    pub refuses_changes: bool,
}

/// One folder permission entry of a fixture folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FolderPermissionEntry {
    pub user: String,
    /// A role (`Reviewer`, `Editor`, `Owner`, ...) or individual rights (`ReadItems`, ...).
    #[serde(deserialize_with = "one_or_many")]
    pub access_rights: Vec<String>,
    /// `Delegate`, `CanViewPrivateItems` (calendar folders only).
    #[serde(default, deserialize_with = "one_or_many")]
    pub sharing_permission_flags: Vec<String>,
}

/// An inbox rule of a fixture mailbox; its priority is its place in the list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxRuleEntry {
    pub name: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Shown by `Get-InboxRule` only with `-IncludeHidden`.
    #[serde(default)]
    pub hidden: bool,
    #[serde(default, deserialize_with = "one_or_many")]
    pub forward_to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub forward_as_attachment_to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub redirect_to: Vec<String>,
    #[serde(default)]
    pub delete_message: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to_folder: Option<String>,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FullAccessEntry {
    pub user: String,
    #[serde(default)]
    pub inherited: bool,
    #[serde(default)]
    pub deny: bool,
    /// Defaults to `["FullAccess"]`; a single string is accepted too.
    #[serde(default, deserialize_with = "one_or_many")]
    pub access_rights: Vec<String>,
    /// How `Get-MailboxPermission` prints `User` (default: the canonical key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown_as: Option<ShownAs>,
}

/// A Send As entry: a bare user string or
/// `{user, deny, inherited, shown_as, trustee_lookup_misses}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SendAsEntry {
    User(String),
    Entry {
        user: String,
        #[serde(default)]
        deny: bool,
        #[serde(default)]
        inherited: bool,
        /// How `Get-RecipientPermission` prints `Trustee`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shown_as: Option<ShownAs>,
        /// `Get-RecipientPermission -Trustee` misses this entry (its SID changed).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        trustee_lookup_misses: bool,
    },
}

impl SendAsEntry {
    pub fn user(&self) -> &str {
        match self {
            SendAsEntry::User(user) | SendAsEntry::Entry { user, .. } => user,
        }
    }
}

/// How Exchange prints the `User` / `Trustee` of a permission entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShownAs {
    /// The lowercase UPN (a group: its primary SMTP address).
    Upn,
    /// The Exchange `Name`.
    Name,
    /// The object id (`ExternalDirectoryObjectId`).
    Guid,
    /// `NAMPR01A001\<SamAccountName>`.
    DomainSam,
    /// The derived SID.
    Sid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalendarEntry {
    pub user: String,
    /// Exchange role name: Owner, PublishingEditor, Editor, Author, Reviewer,
    /// LimitedDetails, AvailabilityOnly, ...
    pub access_rights: String,
    #[serde(default)]
    pub delegate: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PsaTicket {
    /// Numeric string (ConnectWise ticket ids are integers).
    pub id: String,
    pub company_id: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
}

/// Fault injection and paging knobs (`"sim"` in the fixture).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimSettings {
    pub latency_ms: u64,
    /// Graph and Exchange requests in flight together.
    pub concurrency_cap: Option<u32>,
    /// Exchange `InvokeCommand` requests in flight (`$batch` steps included).
    pub exchange_concurrency_cap: Option<u32>,
    /// Graph requests in flight.
    pub graph_concurrency_cap: Option<u32>,
    /// Graph requests in flight per `{user}` path segment (resolved to the person).
    pub graph_mailbox_concurrency_cap: Option<u32>,
    /// Body of Exchange 429 answers.
    pub exchange_throttle_body: ThrottleBody,
    pub rate_503: f64,
    pub seed: u64,
    pub fail_mailboxes: Vec<String>,
    pub noop_remove_mailboxes: Vec<String>,
    /// Reads of these mailboxes' permissions fail (Exchange 500, Graph 403).
    pub unreadable_mailboxes: Vec<String>,
    pub page_size: usize,
    pub retry_after_secs: u64,
    pub psa_fail: bool,
    /// Every person's and group's Exchange `Name` is its object id.
    pub guid_names: bool,
    /// Scripted one-off faults, applied to the first matching requests.
    pub faults: Vec<ScriptedFault>,
    /// Permission reads of a recipient show its grants as they were this long
    /// ago (0: no lag).
    pub read_lag_ms: u64,
    /// After this many authenticated Graph/Exchange requests, every token
    /// issued so far stops working (once).
    pub revoke_tokens_after: Option<u64>,
    /// Cmdlets the app may not run: 403, NUL-padded body, reason in `x-ms-diagnostics`.
    pub forbidden_cmdlets: Vec<String>,
    /// Exchange write cmdlets with no items and no warnings answer 200 with an
    /// empty body and no content type.
    pub empty_write_answers: bool,
    /// Graph calendar routes, mailboxSettings and sendMail on these mailboxes answer 404
    /// `MailboxNotEnabledForRESTAPI`.
    pub rest_disabled_mailboxes: Vec<String>,
    /// Application roles the app lacks: left out of its tokens' `roles` claim, and the
    /// routes that need them refuse the request.
    pub missing_roles: Vec<String>,
    /// The token endpoint rejects the app's credentials (401 `invalid_client`).
    pub m365_credentials_rejected: bool,
    /// The PSA rejects the credentials (401 on every call: ConnectWise's keys, HaloPSA's
    /// client secret, Autotask's API user).
    pub psa_credentials_rejected: bool,
    /// HaloPSA is hosted: the token request must carry `?tenant=` with this value.
    pub halo_tenant: Option<String>,
    /// Autotask's settings require a title on every ticket note.
    pub autotask_note_title_required: bool,
    /// Features the tenant has no license for (`alerts_v2`: Defender XDR, `riskyUsers`:
    /// Entra ID P2, `signInActivity`: Entra ID P1): Graph answers them 403.
    pub unlicensed: Vec<String>,
    /// `POST /webhooks/{name}` with one of these names answers 500 (a receiver that fails).
    pub failing_webhooks: Vec<String>,
}

/// A scripted fault: the first `times` requests to `endpoint` (a `requests`
/// counter key, e.g. `exo Remove-MailboxPermission`) whose identity matches
/// get `answer` instead of (or after) the normal one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedFault {
    pub endpoint: String,
    /// Matches the cmdlet's `Identity`, the Graph `{user}` segment or the
    /// ConnectWise ticket id, resolved like an identity. Absent: any request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub answer: FaultAnswer,
    #[serde(default = "one_time")]
    pub times: u32,
    /// Overrides the answer's HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For `hang` and `hang_after_write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_ms: Option<u64>,
}

fn one_time() -> u32 {
    1
}

/// What a scripted fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultAnswer {
    /// A gateway's 500 with an empty body; the request has no effect.
    #[serde(rename = "500")]
    Error500,
    /// The service's own 500 for a failure that passes: Graph's
    /// `ErrorInternalServerTransientError`, a cmdlet's `StorageTransientException`; no effect.
    #[serde(rename = "transient_500")]
    Transient500,
    /// A cmdlet's permanent failure, 500 `ManagementObjectNotFoundException` (Exchange
    /// endpoints only); no effect.
    #[serde(rename = "permanent_500")]
    Permanent500,
    /// A gateway's 502 with an HTML body; no effect.
    #[serde(rename = "502")]
    BadGateway,
    /// 503 with `Retry-After`; no effect.
    #[serde(rename = "503")]
    Unavailable,
    /// A gateway's 504 with an HTML body; no effect.
    #[serde(rename = "504")]
    GatewayTimeout,
    /// 429 with `Retry-After` (a PSA's request budget spent); no effect.
    #[serde(rename = "429")]
    TooManyRequests,
    /// Status 500 (default), `text/plain` "The request was throttled: ..."; no effect.
    #[serde(rename = "concurrent_text")]
    ConcurrentText,
    /// The request is carried out, then answered 503 with `Retry-After`.
    #[serde(rename = "503_after_write")]
    UnavailableAfterWrite,
    /// The request is carried out, then answered 504.
    #[serde(rename = "504_after_write")]
    GatewayTimeoutAfterWrite,
    /// Sleep `hang_ms`, then carry the request out and answer normally.
    #[serde(rename = "hang")]
    Hang,
    /// Carry the request out, sleep `hang_ms`, then answer normally.
    #[serde(rename = "hang_after_write")]
    HangAfterWrite,
}

impl FaultAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAnswer::Error500 => "500",
            FaultAnswer::Transient500 => "transient_500",
            FaultAnswer::Permanent500 => "permanent_500",
            FaultAnswer::BadGateway => "502",
            FaultAnswer::Unavailable => "503",
            FaultAnswer::GatewayTimeout => "504",
            FaultAnswer::TooManyRequests => "429",
            FaultAnswer::ConcurrentText => "concurrent_text",
            FaultAnswer::UnavailableAfterWrite => "503_after_write",
            FaultAnswer::GatewayTimeoutAfterWrite => "504_after_write",
            FaultAnswer::Hang => "hang",
            FaultAnswer::HangAfterWrite => "hang_after_write",
        }
    }
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            latency_ms: 0,
            concurrency_cap: None,
            exchange_concurrency_cap: None,
            graph_concurrency_cap: None,
            graph_mailbox_concurrency_cap: None,
            exchange_throttle_body: ThrottleBody::Json,
            rate_503: 0.0,
            seed: 7,
            fail_mailboxes: Vec::new(),
            noop_remove_mailboxes: Vec::new(),
            unreadable_mailboxes: Vec::new(),
            page_size: 3,
            retry_after_secs: 1,
            psa_fail: false,
            guid_names: false,
            faults: Vec::new(),
            read_lag_ms: 0,
            revoke_tokens_after: None,
            forbidden_cmdlets: Vec::new(),
            empty_write_answers: false,
            rest_disabled_mailboxes: Vec::new(),
            missing_roles: Vec::new(),
            m365_credentials_rejected: false,
            psa_credentials_rejected: false,
            halo_tenant: None,
            autotask_note_title_required: false,
            unlicensed: Vec::new(),
            failing_webhooks: Vec::new(),
        }
    }
}

/// The body of an Exchange 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ThrottleBody {
    /// `{"error":{"code":"TooManyRequests",...}}`.
    #[default]
    Json,
    /// `text/plain`: "You have reached the maximum number of concurrent requests per tenant. ..."
    Text,
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl Fixture {
    pub fn from_path(path: &Path) -> Result<Fixture, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read fixture {}: {e}", path.display()))?;
        Fixture::from_json(&text).map_err(|e| format!("fixture {}: {e}", path.display()))
    }

    pub fn from_json(text: &str) -> Result<Fixture, String> {
        let fixture: Fixture = serde_json::from_str(text).map_err(|e| e.to_string())?;
        fixture.validate()?;
        Ok(fixture)
    }

    /// Lowercased UPNs of every mailbox: listed ones and those implied by
    /// users with a mailbox.
    pub fn mailbox_upns(&self) -> HashSet<String> {
        let users = self
            .users
            .iter()
            .filter(|u| u.recipient_type == UserType::UserMailbox)
            .map(|u| u.upn.to_lowercase());
        let mailboxes = self.mailboxes.iter().map(|m| m.upn.to_lowercase());
        users.chain(mailboxes).collect()
    }

    /// Lowercased UPNs of every person: users of any type and mailboxes.
    pub fn person_upns(&self) -> HashSet<String> {
        let users = self.users.iter().map(|u| u.upn.to_lowercase());
        let mailboxes = self.mailboxes.iter().map(|m| m.upn.to_lowercase());
        users.chain(mailboxes).collect()
    }

    /// Mail domain of the tenant: the domain of the first user's mail (or UPN,
    /// or the first mailbox).
    pub fn domain(&self) -> &str {
        let first = self
            .users
            .first()
            .map(|u| u.mail.as_deref().unwrap_or(&u.upn));
        let first = first.or_else(|| self.mailboxes.first().map(|m| m.upn.as_str()));
        first
            .and_then(|upn| upn.split_once('@'))
            .map_or("", |(_, domain)| domain)
    }

    fn validate(&self) -> Result<(), String> {
        if self.tenant_id.trim().is_empty() {
            return Err("tenant_id is empty".into());
        }
        unique("user upn", self.users.iter().map(|u| &u.upn))?;
        unique("mailbox upn", self.mailboxes.iter().map(|m| &m.upn))?;
        unique("group name", self.groups.iter().map(|g| &g.name))?;
        unique("psa ticket id", self.psa_tickets.iter().map(|t| &t.id))?;
        unique("contact address", self.contacts.iter().map(|c| &c.address))?;
        let mailboxes = self.mailbox_upns();
        let people = self.person_upns();
        crate::identity::validate(self, &people)?;
        if let Some(bad) = people.iter().find(|upn| !upn.contains('@')) {
            return Err(format!("upn '{bad}' is not an address"));
        }
        for user in &self.users {
            let upn = &user.upn;
            let listed = mailboxes.contains(&upn.to_lowercase());
            if user.recipient_type != UserType::UserMailbox && listed {
                return Err(format!(
                    "user {upn} is a {:?}: it has no mailbox, so it cannot be listed in mailboxes",
                    user.recipient_type
                ));
            }
            if user.recipient_type != UserType::MailUser && !user.send_as.is_empty() {
                return Err(format!(
                    "user {upn}: users[].send_as is for mail users; a mailbox's Send As belongs in mailboxes[]"
                ));
            }
            if let Some(sid) = user.sid_history.iter().find(|s| !s.starts_with("S-1-")) {
                return Err(format!(
                    "user {upn}: sid_history entry '{sid}' is not a SID"
                ));
            }
        }
        for group in &self.groups {
            if let Some(member) = group
                .members
                .iter()
                .find(|m| !people.contains(&m.to_lowercase()))
            {
                return Err(format!(
                    "group '{}': member '{member}' is not a user",
                    group.name
                ));
            }
            if group.kind == GroupType::SecurityGroup
                && (group.mail.is_some() || !group.send_as.is_empty())
            {
                return Err(format!(
                    "group '{}': a SecurityGroup is not mail-enabled (no mail, no send_as)",
                    group.name
                ));
            }
        }
        let addresses: HashSet<String> = self
            .users
            .iter()
            .flat_map(|u| [Some(&u.upn), u.mail.as_ref()])
            .flatten()
            .chain(self.mailboxes.iter().map(|m| &m.upn))
            .map(|a| a.to_lowercase())
            .collect();
        for contact in &self.contacts {
            if !contact.address.contains('@') {
                return Err(format!("contact '{}' is not an address", contact.address));
            }
            if addresses.contains(&contact.address.to_lowercase()) {
                return Err(format!(
                    "contact '{}' has the address of a user",
                    contact.address
                ));
            }
        }
        for mailbox in &self.mailboxes {
            if let Some(entry) = mailbox
                .calendar
                .iter()
                .find(|c| c.access_rights.trim().is_empty())
            {
                return Err(format!(
                    "mailbox {}: calendar entry for '{}' has no access_rights",
                    mailbox.upn, entry.user
                ));
            }
        }
        if let Some(ticket) = self
            .psa_tickets
            .iter()
            .find(|t| t.id.parse::<u64>().is_err())
        {
            return Err(format!("psa ticket id '{}' is not numeric", ticket.id));
        }
        let sim = &self.sim;
        if sim.page_size == 0 {
            return Err("sim.page_size must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&sim.rate_503) {
            return Err("sim.rate_503 must be within 0..=1".into());
        }
        let knobs = sim
            .fail_mailboxes
            .iter()
            .chain(&sim.noop_remove_mailboxes)
            .chain(&sim.unreadable_mailboxes)
            .chain(&sim.rest_disabled_mailboxes);
        if let Some(unknown) = knobs
            .into_iter()
            .find(|m| !mailboxes.contains(&m.to_lowercase()))
        {
            return Err(format!("sim: '{unknown}' is not a mailbox of the tenant"));
        }
        if let Some(unknown) = sim
            .forbidden_cmdlets
            .iter()
            .find(|c| crate::cmdlets::canonical_name(c).is_none())
        {
            return Err(format!(
                "sim.forbidden_cmdlets: '{unknown}' is not a cmdlet the simulator serves"
            ));
        }
        if let Some(unknown) = sim
            .unlicensed
            .iter()
            .find(|f| !["alerts_v2", "riskyUsers", "signInActivity"].contains(&f.as_str()))
        {
            return Err(format!(
                "sim.unlicensed: '{unknown}' is not a licensed feature (alerts_v2, riskyUsers, signInActivity)"
            ));
        }
        if let Some(unknown) = sim.missing_roles.iter().find(|r| !crate::auth::is_role(r)) {
            return Err(format!(
                "sim.missing_roles: '{unknown}' is not a role the simulator grants ({})",
                crate::auth::GRAPH_ROLES
                    .iter()
                    .chain(crate::auth::EXCHANGE_ROLES)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for fault in &sim.faults {
            let name = &fault.endpoint;
            if !crate::faults::is_endpoint(name) {
                return Err(format!(
                    "sim.faults: '{name}' is not an endpoint key (e.g. 'exo Remove-MailboxPermission', 'graph GET calendarPermissions', 'cw POST notes')"
                ));
            }
            if fault.times == 0 {
                return Err(format!("sim.faults: '{name}': times must be at least 1"));
            }
            let hangs = matches!(
                fault.answer,
                FaultAnswer::Hang | FaultAnswer::HangAfterWrite
            );
            if hangs != fault.hang_ms.is_some() {
                return Err(format!(
                    "sim.faults: '{name}': hang_ms goes with (and only with) the answers hang and hang_after_write"
                ));
            }
            if fault.answer == FaultAnswer::Permanent500
                && !name
                    .get(..4)
                    .is_some_and(|p| p.eq_ignore_ascii_case("exo "))
            {
                return Err(format!(
                    "sim.faults: '{name}': permanent_500 is a cmdlet's failure: only for 'exo <Cmdlet>' endpoints"
                ));
            }
            if fault.status.is_some_and(|s| !(100..=599).contains(&s)) {
                return Err(format!(
                    "sim.faults: '{name}': status is not an HTTP status"
                ));
            }
        }
        Ok(())
    }
}

fn unique<'a>(what: &str, values: impl Iterator<Item = &'a String>) -> Result<(), String> {
    let mut seen = HashSet::new();
    for value in values {
        if !seen.insert(value.to_lowercase()) {
            return Err(format!("duplicate {what} '{value}'"));
        }
    }
    Ok(())
}

/// Stable 64-bit FNV-1a hash.
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A GUID-shaped id derived from `key` (no randomness).
pub(crate) fn derived_guid(key: &str) -> String {
    let high = fnv1a(key.as_bytes());
    let low = fnv1a(format!("{key}#{high:016x}").as_bytes());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// Exchange DistinguishedName of an object named `name` in `tenant_id`.
pub(crate) fn distinguished_name(name: &str, tenant_id: &str) -> String {
    format!(
        "CN={name},OU={tenant_id},OU=Microsoft Exchange Hosted Organizations,\
         DC=NAMPR01A001,DC=PROD,DC=OUTLOOK,DC=COM"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_stable_and_shaped() {
        let id = derived_guid("john.smith@acmecorp.com");
        assert_eq!(id, derived_guid("john.smith@acmecorp.com"));
        assert_ne!(id, derived_guid("john.smith2@acmecorp.com"));
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn fnv_matches_reference_vector() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn send_as_accepts_strings_and_objects() {
        let entries: Vec<SendAsEntry> =
            serde_json::from_str(r#"["a@x.com", {"user": "b@x.com", "deny": true}]"#).unwrap();
        assert_eq!(entries[0].user(), "a@x.com");
        assert!(matches!(entries[1], SendAsEntry::Entry { deny: true, .. }));
        let shown: SendAsEntry = serde_json::from_str(
            r#"{"user": "c@x.com", "shown_as": "domain_sam", "trustee_lookup_misses": true}"#,
        )
        .unwrap();
        assert!(matches!(
            shown,
            SendAsEntry::Entry {
                shown_as: Some(ShownAs::DomainSam),
                trustee_lookup_misses: true,
                ..
            }
        ));
    }

    #[test]
    fn rejects_unknown_group_member() {
        let json = r#"{"tenant_id":"t","organization":{"company_id":"c","company_name":"C",
            "m365_permission_ticket_board":"B","notification_sender":"n@x.com"},
            "users":[{"upn":"a@x.com","display_name":"A"}],
            "groups":[{"name":"G","members":["nobody@x.com"]}]}"#;
        let err = Fixture::from_json(json).unwrap_err();
        assert!(err.contains("nobody@x.com"), "{err}");
    }

    fn with(users: &str, rest: &str) -> Result<Fixture, String> {
        let json = format!(
            r#"{{"tenant_id":"t","organization":{{"company_id":"c","company_name":"C",
            "m365_permission_ticket_board":"B","notification_sender":"n@x.com"}},
            "users":{users}{rest}}}"#
        );
        Fixture::from_json(&json)
    }

    #[test]
    fn rejects_inconsistent_recipients() {
        let mail_user = r#"[{"upn":"m@x.com","display_name":"M","recipient_type":"MailUser"}]"#;
        let cases = [
            (
                mail_user,
                r#","mailboxes":[{"upn":"m@x.com"}]"#,
                "no mailbox",
            ),
            (
                r#"[{"upn":"a@x.com","display_name":"A","send_as":["a@x.com"]}]"#,
                "",
                "for mail users",
            ),
            (
                r#"[{"upn":"a@x.com","display_name":"A","sid_history":["x"]}]"#,
                "",
                "not a SID",
            ),
            (
                r#"[{"upn":"a@x.com","display_name":"A"}]"#,
                r#","groups":[{"name":"S","type":"SecurityGroup","mail":"s@x.com"}]"#,
                "not mail-enabled",
            ),
            (
                r#"[{"upn":"a@x.com","display_name":"A"}]"#,
                r#","contacts":[{"address":"A@x.com","display_name":"C"}]"#,
                "address of a user",
            ),
            (
                mail_user,
                r#","sim":{"fail_mailboxes":["m@x.com"]}"#,
                "not a mailbox",
            ),
        ];
        for (users, rest, expected) in cases {
            let err = with(users, rest).unwrap_err();
            assert!(err.contains(expected), "{rest}: {err}");
        }
        let ok = with(
            mail_user,
            r#","groups":[{"name":"G","members":["m@x.com"]}],"contacts":[{"address":"c@y.com","display_name":"C"}]"#,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }
}
