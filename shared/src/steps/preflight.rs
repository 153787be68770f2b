//! The checks before anything is removed: the Microsoft 365 credentials work and carry the
//! roles the run needs, the Exchange admin API lets the app in, the notification sender is a
//! user with a mailbox, the recipients are addresses, and the ticket named belongs to this
//! company (or, without one, the company exists in the PSA for a new ticket). Discovery runs
//! them first; `revoke365 check` runs them alone.
//!
//! Every check makes at most a couple of reads. A check gives a definite answer (ok, or a
//! problem naming the field to fix) or says why it could not be made (an outage).

use super::{Notify, Tenant};
use crate::error::{ErrorKind, RemoteError};
use crate::model::{
    validate_email, FailureCode, OrgSettings, RevocationRequest, RunFailure, RunMode,
};
use crate::ports::{AppRoles, MailboxState, OutgoingMail, UserLookup};
use serde::Serialize;

/// Which side of the run a check is about: Microsoft 365 problems stop every run (nothing
/// could be removed); PSA and mail problems stop a revoke run but never a contain run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    M365,
    Psa,
    Mail,
}

/// A definite answer that something is wrong, naming what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: FailureCode,
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// What was found.
    Ok(String),
    /// Nothing stops the run, but something may be missing that only the service can confirm
    /// (a role granted to one mailbox with RBAC for Applications is not in the token).
    Warning(String),
    Problem(Problem),
    /// The check could not be made now; `error` when a service failed (a transient one makes
    /// discovery try again later).
    Unchecked {
        why: String,
        error: Option<RemoteError>,
    },
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `m365_credentials`, `m365_roles`, `exchange_access`, `mail_roles`,
    /// `notification_sender`, `notification_recipients`, `psa_ticket` or `psa_company`
    /// (`send_test` with `revoke365 check --send-test`).
    pub name: &'static str,
    pub area: Area,
    pub outcome: Outcome,
}

impl Check {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_) | Outcome::Warning(_))
    }

    /// Why it is not ok, or what was found: one line for people.
    pub fn detail(&self) -> String {
        match &self.outcome {
            Outcome::Ok(found) => found.clone(),
            Outcome::Warning(why) => format!("warning: {why}"),
            Outcome::Problem(p) => format!("{} ({}): {}", p.code.as_str(), p.field, p.message),
            Outcome::Unchecked { why, .. } => format!("not checked: {why}"),
        }
    }

    fn ok(name: &'static str, area: Area, found: impl Into<String>) -> Check {
        Check {
            name,
            area,
            outcome: Outcome::Ok(found.into()),
        }
    }

    fn warning(name: &'static str, area: Area, why: impl Into<String>) -> Check {
        Check {
            name,
            area,
            outcome: Outcome::Warning(why.into()),
        }
    }

    fn problem(
        name: &'static str,
        area: Area,
        code: FailureCode,
        field: &'static str,
        message: impl Into<String>,
    ) -> Check {
        Check {
            name,
            area,
            outcome: Outcome::Problem(Problem {
                code,
                field,
                message: message.into(),
            }),
        }
    }

    fn unchecked(
        name: &'static str,
        area: Area,
        why: impl Into<String>,
        error: Option<RemoteError>,
    ) -> Check {
        Check {
            name,
            area,
            outcome: Outcome::Unchecked {
                why: why.into(),
                error,
            },
        }
    }
}

/// What a run is about to do and for whom: the checks depend on it.
pub struct Subject<'a> {
    pub org: &'a OrgSettings,
    pub ticket_id: Option<&'a str>,
    /// The requestor's address, when the request names one (they are mailed too).
    pub requestor: Option<String>,
}

/// The outcomes of every check, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    pub checks: Vec<Check>,
}

/// What discovery does after the checks.
#[derive(Debug)]
pub enum Verdict {
    /// Go on; `errors` are problems a contain run records in its result instead of stopping.
    Proceed { errors: Vec<String> },
    /// A Microsoft 365 service could not be reached: try the step again later.
    Retry(RemoteError),
    /// Stop before anything is removed, with this failure.
    Refuse(RunFailure),
}

/// A security-alert run (the EventBridge trigger fills in `incident_id`) is a contain run:
/// the access must go even when the PSA or the mail are not right.
pub fn is_contain(request: &RevocationRequest) -> bool {
    request.incident_id.is_some() || request.mode == crate::model::RunMode::Contain
}

impl Preflight {
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(Check::is_ok)
    }

    /// Microsoft 365 problems refuse every run; PSA and mail problems refuse a revoke run and
    /// are recorded by a contain run. Checks that could not be made never refuse: a transient
    /// Microsoft 365 failure (or any check cut short by the step's deadline) retries the step
    /// (discovery needs the tenant anyway); a PSA or mail outage does not hold up the removal,
    /// and the ticket's company is checked again before the report is written to it.
    pub fn verdict(&self, contain: bool) -> Verdict {
        let mut errors = Vec::new();
        for check in &self.checks {
            match &check.outcome {
                Outcome::Ok(_) => {}
                Outcome::Warning(why) => {
                    tracing::warn!(check = check.name, %why, "a check before removal warns")
                }
                Outcome::Problem(p) if check.area == Area::M365 || !contain => {
                    return Verdict::Refuse(RunFailure::new(p.code, Some(p.field), &p.message))
                }
                Outcome::Problem(p) => errors.push(format!(
                    "checked before removal ({}): {}",
                    p.field, p.message
                )),
                Outcome::Unchecked { error: Some(e), .. }
                    if e.is_stopped() || (check.area == Area::M365 && e.is_transient()) =>
                {
                    return Verdict::Retry(e.clone())
                }
                Outcome::Unchecked { why, .. } => {
                    tracing::warn!(check = check.name, %why, "a check before removal could not be made")
                }
            }
        }
        Verdict::Proceed { errors }
    }
}

/// An application role a feature needs, and the broader roles that include it.
struct Role {
    name: &'static str,
    service: &'static str,
    also: &'static [&'static str],
    needed_for: &'static str,
}

const DIRECTORY_READ: [&str; 2] = ["Directory.Read.All", "Directory.ReadWrite.All"];

/// What discovery, removal and verification need.
const M365_ROLES: &[Role] = &[
    Role {
        name: "User.Read.All",
        service: "Graph",
        also: &["User.ReadWrite.All", DIRECTORY_READ[0], DIRECTORY_READ[1]],
        needed_for: "finding the user",
    },
    Role {
        name: "GroupMember.Read.All",
        service: "Graph",
        also: &[
            "GroupMember.ReadWrite.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            DIRECTORY_READ[0],
            DIRECTORY_READ[1],
        ],
        needed_for: "group membership (indirect access)",
    },
    Role {
        name: "Calendars.ReadWrite",
        service: "Graph",
        also: &[],
        needed_for: "calendar permissions",
    },
    Role {
        name: "Exchange.ManageAsApp",
        service: "Exchange",
        also: &[],
        needed_for: "Full Access, Send As and Send on Behalf",
    },
];

/// What the notification needs.
const MAIL_ROLES: &[Role] = &[
    Role {
        name: "Mail.Send",
        service: "Graph",
        also: &[],
        needed_for: "the notification email",
    },
    Role {
        name: "MailboxSettings.Read",
        service: "Graph",
        also: &["MailboxSettings.ReadWrite"],
        needed_for: "checking the sender's mailbox",
    },
];

/// Runs every check against the company's tenant and PSA.
pub async fn preflight(tenant: Tenant<'_>, notify: Notify<'_>, subject: &Subject<'_>) -> Preflight {
    let org = subject.org;
    let mut checks = Vec::new();
    let credentials = match tenant.directory.app_roles().await {
        Ok(roles) => {
            checks.push(Check::ok(
                "m365_credentials",
                Area::M365,
                format!(
                    "the app gets tokens for Graph and the Exchange admin API in tenant {}",
                    org.tenant_id
                ),
            ));
            Some(roles)
        }
        Err(e) if e.is_auth() => {
            checks.push(Check::problem(
                "m365_credentials",
                Area::M365,
                FailureCode::CredentialsInvalid,
                "m365_credentials",
                format!(
                    "the Microsoft 365 app credentials were rejected in tenant {}: {}",
                    org.tenant_id,
                    e.reason()
                ),
            ));
            None
        }
        Err(e) => {
            checks.push(Check::unchecked(
                "m365_credentials",
                Area::M365,
                e.to_string(),
                Some(e),
            ));
            None
        }
    };
    match &credentials {
        Some(roles) => {
            checks.push(roles_check(
                "m365_roles",
                Area::M365,
                roles,
                M365_ROLES,
                Needed::Always,
            ));
            checks.push(exchange_check(tenant, org, roles).await);
            checks.push(roles_check(
                "mail_roles",
                Area::Mail,
                roles,
                MAIL_ROLES,
                Needed::OrScoped,
            ));
            checks.push(
                match org.contain_settings().roles_verdict(roles.graph.as_deref()) {
                    Some(Ok(found)) => Check::ok("contain_roles", Area::M365, found),
                    Some(Err(why)) => Check::warning("contain_roles", Area::M365, why),
                    None => Check::unchecked(
                        "contain_roles",
                        Area::M365,
                        "the Graph token's roles cannot be read",
                        None,
                    ),
                },
            );
            checks.push(sender_check(tenant, org).await);
        }
        None => {
            let why = "needs working Microsoft 365 credentials";
            for (name, area) in [
                ("m365_roles", Area::M365),
                ("exchange_access", Area::M365),
                ("mail_roles", Area::Mail),
                ("contain_roles", Area::M365),
                ("notification_sender", Area::Mail),
            ] {
                checks.push(Check::unchecked(name, area, why, None));
            }
        }
    }
    checks.push(recipients_check(org, subject.requestor.as_deref()));
    checks.push(match subject.ticket_id {
        _ if !org.psa_kind.has_tickets() => Check::ok(
            "psa_company",
            Area::Psa,
            format!(
                "company '{}' has no PSA (psa_kind = \"none\"): no ticket is made, the report goes by email",
                org.company_id
            ),
        ),
        Some(ticket) => ticket_check(notify, org, ticket).await,
        None => company_check(notify, org).await,
    });
    Preflight { checks }
}

/// Before a run is made for a caller who is there to be told (the CLI, an API request): the
/// user the request names is one user of the tenant, and the ticket it names is this
/// company's. A typo is then the caller's error alone — no run, no ticket, no note, no email.
/// `Ok` when both hold, or could not be checked now: the run checks them again, and tells the
/// company's board about a refusal (never a ticket of another company).
pub async fn check_request(
    tenant: Tenant<'_>,
    notify: Notify<'_>,
    org: &OrgSettings,
    request: &RevocationRequest,
) -> Result<(), RunFailure> {
    let user = async {
        // A cleanup run names a trustee that by definition resolves to no user.
        if request.mode == RunMode::Cleanup {
            return None;
        }
        match tenant.directory.find_user(&request.user_email).await {
            Ok(lookup) => crate::scan::unusable_user(&lookup, &request.user_email, org),
            Err(e) => {
                tracing::warn!(error = %e, "the user could not be looked up before the run; the run looks again");
                None
            }
        }
    };
    let ticket = async {
        let ticket = request
            .ticket_id
            .as_deref()
            .filter(|_| org.psa_kind.has_tickets())?;
        match ticket_check(notify, org, ticket).await.outcome {
            // Only the ticket itself: a PSA that rejects our credentials is not the caller's
            // typo, and the run reports it.
            Outcome::Problem(p) if p.field == "ticket_id" => {
                Some(RunFailure::new(p.code, Some(p.field), p.message))
            }
            _ => None,
        }
    };
    let (user, ticket) = tokio::join!(user, ticket);
    match user.or(ticket) {
        Some(refused) => Err(refused),
        None => Ok(()),
    }
}

/// `revoke365 check --send-test`: a short email from the sender to the org's recipients.
pub async fn send_test(notify: Notify<'_>, org: &OrgSettings) -> Check {
    let mail = OutgoingMail {
        from: org.notification_sender.clone(),
        to: org.m365_permission_notification_recipients.clone(),
        subject: format!("[Revoke365] Test message for {}", org.company_name),
        html_body: format!(
            "<p>This is a test message from Revoke365 for {}: reports of mailbox access \
             removals will come from this sender to these recipients.</p>",
            html_escape(&org.company_name)
        ),
        attachments: Vec::new(),
    };
    if mail.to.is_empty() {
        return Check::problem(
            "send_test",
            Area::Mail,
            FailureCode::RecipientInvalid,
            "m365_permission_notification_recipients",
            "no recipient to send the test message to",
        );
    }
    match notify.mailer.send(&mail).await {
        Ok(()) => Check::ok(
            "send_test",
            Area::Mail,
            format!(
                "test message sent from {} to {}",
                mail.from,
                mail.to.join(", ")
            ),
        ),
        Err(e) => Check::problem(
            "send_test",
            Area::Mail,
            FailureCode::SenderInvalid,
            "notification_sender",
            format!("the test message could not be sent: {}", e.reason()),
        ),
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Whether a role must be in the token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needed {
    Always,
    /// Or granted on the sender's mailbox alone with RBAC for Applications, which the token
    /// does not show: a missing role is a warning.
    OrScoped,
}

/// The roles in `wanted` the tokens lack, named with what needs them.
fn roles_check(
    name: &'static str,
    area: Area,
    roles: &AppRoles,
    wanted: &[Role],
    needed: Needed,
) -> Check {
    let mut missing = Vec::new();
    for role in wanted {
        let granted = match role.service {
            "Exchange" => roles.exchange.as_ref(),
            _ => roles.graph.as_ref(),
        };
        let Some(granted) = granted else {
            return Check::unchecked(
                name,
                area,
                format!("the {} token's roles cannot be read", role.service),
                None,
            );
        };
        let has = |r: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(r));
        if !has(role.name) && !role.also.iter().any(|r| has(r)) {
            missing.push(format!(
                "{} ({}, for {})",
                role.name, role.service, role.needed_for
            ));
        }
    }
    if missing.is_empty() {
        let names: Vec<&str> = wanted.iter().map(|r| r.name).collect();
        return Check::ok(name, area, format!("granted: {}", names.join(", ")));
    }
    if needed == Needed::OrScoped {
        return Check::warning(
            name,
            area,
            format!(
                "the app's token lacks the application roles {}: fine if they are granted on the sender's mailbox with RBAC for Applications (`revoke365 check --send-test` proves Mail.Send), else add them under API permissions",
                missing.join(", ")
            ),
        );
    }
    Check::problem(
        name,
        area,
        FailureCode::CredentialsInvalid,
        "m365_app_roles",
        format!(
            "the app lacks the application roles {}; add them under API permissions and grant admin consent",
            missing.join(", ")
        ),
    )
}

/// One Exchange admin API call: the app needs an Exchange role besides `Exchange.ManageAsApp`.
async fn exchange_check(tenant: Tenant<'_>, org: &OrgSettings, roles: &AppRoles) -> Check {
    const NAME: &str = "exchange_access";
    // Unreadable roles: the call below tells.
    let has_role = match &roles.exchange {
        None => true,
        Some(r) => r
            .iter()
            .any(|g| g.eq_ignore_ascii_case("Exchange.ManageAsApp")),
    };
    if !has_role {
        return Check::unchecked(NAME, Area::M365, "needs Exchange.ManageAsApp", None);
    }
    match tenant.exchange.recipient(&org.notification_sender).await {
        Ok(_) => Check::ok(NAME, Area::M365, "the Exchange admin API runs the app's cmdlets"),
        Err(e) if refused(&e) => Check::problem(
            NAME,
            Area::M365,
            FailureCode::CredentialsInvalid,
            "exchange_role",
            format!(
                "the Exchange admin API refused the app: {}; assign its service principal an Exchange role that can read and change mailbox permissions (e.g. Exchange Recipient Administrator)",
                e.reason()
            ),
        ),
        Err(e) if e.is_transient() => Check::unchecked(NAME, Area::M365, e.to_string(), Some(e)),
        // Any other answer (the sender is ambiguous, say) came from a cmdlet that ran.
        Err(_) => Check::ok(NAME, Area::M365, "the Exchange admin API runs the app's cmdlets"),
    }
}

/// Rejected credentials, or a 403: the service will not let the app do this.
fn refused(e: &RemoteError) -> bool {
    e.is_auth() || matches!(e.kind, ErrorKind::Api { status: 403, .. })
}

/// The sender is a user of the tenant with a mailbox Graph can send from.
async fn sender_check(tenant: Tenant<'_>, org: &OrgSettings) -> Check {
    const NAME: &str = "notification_sender";
    const FIELD: &str = "notification_sender";
    let sender = &org.notification_sender;
    let problem = |message: String| {
        Check::problem(NAME, Area::Mail, FailureCode::SenderInvalid, FIELD, message)
    };
    if let Err(e) = validate_email(FIELD, sender) {
        return problem(e.message);
    }
    let user = match tenant.directory.find_user(sender).await {
        Ok(UserLookup::Found { user, .. }) => user,
        Ok(UserLookup::NotFound) => {
            return problem(format!(
            "'{sender}' is not a user in tenant {}; name a user or shared mailbox of the tenant",
            org.tenant_id
        ))
        }
        Ok(UserLookup::Ambiguous { candidates }) => {
            return problem(format!(
                "'{sender}' names {} users ({}); name the sender by UPN",
                candidates.len(),
                candidates.join(", ")
            ))
        }
        Err(e) => return unchecked_remote(NAME, Area::Mail, e),
    };
    match tenant.directory.mailbox_state(&user.id).await {
        Ok(MailboxState::Usable { purpose }) => Check::ok(
            NAME,
            Area::Mail,
            match purpose {
                Some(p) => format!("{sender} has a mailbox ({p})"),
                None => format!("{sender} has a mailbox"),
            },
        ),
        Ok(MailboxState::NotUsable { reason }) => problem(format!(
            "'{sender}' has no Exchange Online mailbox Graph can send from ({reason})"
        )),
        // Without MailboxSettings.Read (on this mailbox) the mailbox cannot be looked at.
        Err(e) if refused(&e) => Check::warning(
            NAME,
            Area::Mail,
            format!(
                "{sender} is a user; whether it has a mailbox could not be read ({}): grant MailboxSettings.Read, or use `revoke365 check --send-test`",
                e.reason()
            ),
        ),
        Err(e) => unchecked_remote(NAME, Area::Mail, e),
    }
}

fn unchecked_remote(name: &'static str, area: Area, e: RemoteError) -> Check {
    Check::unchecked(name, area, e.to_string(), Some(e))
}

/// Every recipient is an address, and someone is told.
fn recipients_check(org: &OrgSettings, requestor: Option<&str>) -> Check {
    const NAME: &str = "notification_recipients";
    const FIELD: &str = "m365_permission_notification_recipients";
    for r in &org.m365_permission_notification_recipients {
        if let Err(e) = validate_email(FIELD, r) {
            return Check::problem(
                NAME,
                Area::Mail,
                FailureCode::RecipientInvalid,
                FIELD,
                e.message,
            );
        }
    }
    let mut to: Vec<&str> = requestor.into_iter().collect();
    to.extend(
        org.m365_permission_notification_recipients
            .iter()
            .map(String::as_str),
    );
    if to.is_empty() {
        return Check::problem(
            NAME,
            Area::Mail,
            FailureCode::RecipientInvalid,
            FIELD,
            format!(
                "nobody would be told: company '{}' has no notification recipients and the request names no requestor address",
                org.company_id
            ),
        );
    }
    Check::ok(NAME, Area::Mail, format!("to {}", to.join(", ")))
}

/// The ticket exists and belongs to this company. Another customer's company is never named:
/// this answer reaches the API caller.
async fn ticket_check(notify: Notify<'_>, org: &OrgSettings, ticket: &str) -> Check {
    const NAME: &str = "psa_ticket";
    match notify.psa.ticket_company(ticket).await {
        Ok(Some(company)) if company.is(&org.psa_company) => Check::ok(
            NAME,
            Area::Psa,
            format!("ticket {ticket} belongs to {}", company.identifier),
        ),
        Ok(Some(_)) => Check::problem(
            NAME,
            Area::Psa,
            FailureCode::TicketNotForCompany,
            "ticket_id",
            format!(
                "ticket {ticket} belongs to another company in the PSA, not to '{}' (psa_company of company '{}'); name a ticket of this company, or none to have one created",
                org.psa_company, org.company_id
            ),
        ),
        Ok(None) => Check::problem(
            NAME,
            Area::Psa,
            FailureCode::TicketNotFound,
            "ticket_id",
            format!("ticket {ticket} does not exist in the PSA; name an existing ticket, or none to have one created"),
        ),
        Err(e) => psa_error(NAME, e),
    }
}

/// Without a ticket, one is created for `psa_company`: it must exist.
async fn company_check(notify: Notify<'_>, org: &OrgSettings) -> Check {
    const NAME: &str = "psa_company";
    match notify.psa.find_company(&org.psa_company).await {
        Ok(Some(company)) => Check::ok(
            NAME,
            Area::Psa,
            format!(
                "{} ({}) exists; a ticket will be created {}",
                company.identifier,
                company.name,
                org.new_ticket_place()
            ),
        ),
        Ok(None) => Check::problem(
            NAME,
            Area::Psa,
            FailureCode::PsaCompanyNotFound,
            "psa_company",
            format!(
                "'{}' (psa_company of company '{}') is not a company in the PSA, so no ticket can be created for it",
                org.psa_company, org.company_id
            ),
        ),
        Err(e) => psa_error(NAME, e),
    }
}

fn psa_error(name: &'static str, e: RemoteError) -> Check {
    if refused(&e) {
        return Check::problem(
            name,
            Area::Psa,
            FailureCode::CredentialsInvalid,
            "psa_credentials",
            format!("the PSA rejected the API credentials: {}", e.reason()),
        );
    }
    unchecked_remote(name, Area::Psa, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(graph: &[&str], exchange: &[&str]) -> AppRoles {
        let owned = |r: &[&str]| Some(r.iter().map(|s| s.to_string()).collect());
        AppRoles {
            graph: owned(graph),
            exchange: owned(exchange),
        }
    }

    #[test]
    fn missing_roles_are_named_and_broader_roles_count() {
        let check = roles_check(
            "m365_roles",
            Area::M365,
            &roles(&["Directory.Read.All", "Calendars.ReadWrite"], &[]),
            M365_ROLES,
            Needed::Always,
        );
        let Outcome::Problem(p) = &check.outcome else {
            panic!("{check:?}")
        };
        assert_eq!(
            (p.code, p.field),
            (FailureCode::CredentialsInvalid, "m365_app_roles")
        );
        assert!(
            p.message.contains("Exchange.ManageAsApp (Exchange"),
            "{}",
            p.message
        );
        assert!(!p.message.contains("User.Read.All"), "{}", p.message);
        assert!(!p.message.contains("GroupMember.Read.All"), "{}", p.message);
        let all = roles(
            &[
                "User.Read.All",
                "GroupMember.Read.All",
                "Calendars.ReadWrite",
            ],
            &["Exchange.ManageAsApp"],
        );
        assert!(roles_check("m365_roles", Area::M365, &all, M365_ROLES, Needed::Always).is_ok());
        // Mail.Send scoped to the sender with RBAC for Applications is not in the token.
        let scoped = roles_check("mail_roles", Area::Mail, &all, MAIL_ROLES, Needed::OrScoped);
        assert!(
            matches!(&scoped.outcome, Outcome::Warning(w) if w.contains("Mail.Send")),
            "{scoped:?}"
        );
        let unreadable = AppRoles {
            graph: None,
            exchange: Some(vec![]),
        };
        assert!(matches!(
            roles_check(
                "mail_roles",
                Area::Mail,
                &unreadable,
                MAIL_ROLES,
                Needed::OrScoped
            )
            .outcome,
            Outcome::Unchecked { .. }
        ));
    }

    fn preflight_of(checks: Vec<Check>) -> Preflight {
        Preflight { checks }
    }

    #[test]
    fn contain_runs_record_psa_and_mail_problems_and_stop_only_for_m365() {
        let ticket = Check::problem(
            "psa_ticket",
            Area::Psa,
            FailureCode::TicketNotForCompany,
            "ticket_id",
            "another company's",
        );
        let checks = preflight_of(vec![
            Check::ok("m365_credentials", Area::M365, "ok"),
            ticket,
        ]);
        assert!(matches!(
            checks.verdict(false),
            Verdict::Refuse(RunFailure {
                code: FailureCode::TicketNotForCompany,
                ..
            })
        ));
        match checks.verdict(true) {
            Verdict::Proceed { errors } => {
                assert_eq!(
                    errors,
                    ["checked before removal (ticket_id): another company's"]
                )
            }
            other => panic!("{other:?}"),
        }
        let m365 = preflight_of(vec![Check::problem(
            "m365_roles",
            Area::M365,
            FailureCode::CredentialsInvalid,
            "m365_app_roles",
            "lacks",
        )]);
        assert!(matches!(m365.verdict(true), Verdict::Refuse(_)));
    }

    #[test]
    fn recipients_must_be_addresses_and_someone_must_be_told() {
        let mut org: OrgSettings = serde_json::from_value(serde_json::json!({
            "company_id": "acme", "company_name": "Acme", "tenant_id": "t", "psa_company": "Acme",
            "m365_permission_ticket_board": "B", "notification_sender": "a@acme.com",
            "m365_permission_notification_recipients": ["secops@msp.example", "secops@"]
        }))
        .unwrap();
        let bad = recipients_check(&org, None);
        assert!(
            bad.detail()
                .contains("'secops@' is not a valid email address"),
            "{}",
            bad.detail()
        );
        org.m365_permission_notification_recipients.clear();
        assert!(recipients_check(&org, None)
            .detail()
            .contains("nobody would be told"));
        assert!(recipients_check(&org, Some("hr@acme.com")).is_ok());
    }
}
