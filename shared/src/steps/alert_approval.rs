//! The approval notice of an alert whose users were not all contained: a PSA ticket with a
//! note, and an email to the company's notification recipients, naming the users awaiting
//! approval and those the company never contains automatically, and the command or API call
//! that contains one. Sent at most once per alert (a re-sent alert says it was sent before).

use super::alert_users::{AlertRun, HeldUser, Reached};
use crate::error::StoreError;
use crate::model::{AlertSettings, AlertedUser, OrgSettings, ALERT_DEDUPE_WINDOW};
use crate::ports::{AlertLedger, NewTicket, Notify, OutgoingMail};
use crate::render::{esc, marked_summary, one_line};
use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt::Write;
use tracing::{info, warn};

/// What became of one alert's approval notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalNoticeSent {
    pub alert_id: String,
    /// The reference the ticket, the note and the email carry.
    pub reference: String,
    /// The ticket the note went to, when one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// The notice of this alert went before (the alert came again): nothing was sent now.
    pub sent_before: bool,
    /// A line per channel: where it went, or why it did not.
    pub outcome: Vec<String>,
}

/// What the notice is about: one alert, what became of its users, and the caps that held them.
pub(super) struct ApprovalNotice<'a> {
    pub org: &'a OrgSettings,
    pub settings: &'a AlertSettings,
    /// One of the alert's users: the alert's source, ids and reason.
    pub alert: &'a AlertedUser,
    pub contained: &'a [AlertRun],
    pub awaiting: &'a [HeldUser],
    pub never_contain: &'a [HeldUser],
}

impl ApprovalNotice<'_> {
    /// The ledger key that makes the notice go once per alert.
    fn key(&self) -> String {
        let key = format!(
            "{}:{}:{}:approval_notice",
            self.org.company_id,
            self.alert.source.as_str(),
            self.alert.alert_id
        );
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    /// What the note and the email carry to be found again (the sandbox's files, a search).
    pub fn marker(&self) -> String {
        format!("approval-{}", &self.key()[..16])
    }

    fn subject(&self) -> String {
        format!(
            "Revoke365: {} user(s) of {} incident {} await containment approval ({})",
            self.awaiting.len(),
            self.alert.source.as_str(),
            one_line(&self.alert.incident_id),
            self.org.company_name
        )
    }

    /// The contain run an operator starts for `user`, as a command and as an API body. The
    /// incident id comes from the alert: only its plain characters go into a command an
    /// operator may paste into a shell.
    fn approve(&self, user: &str) -> (String, String) {
        let company = &self.org.company_id;
        let incident: String = self
            .alert
            .incident_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.:".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let command = format!(
            "revoke365 run --company-id {company} --user {user} --contain --victim-mailbox --reason \"approved: {} incident {incident}\"",
            self.alert.source.as_str()
        );
        let body = serde_json::json!({
            "user_email": user,
            "company_id": company,
            "mode": "contain",
            "victim_mailbox": true,
            "incident_id": incident,
            "reason": format!("approved: {} incident {incident}", self.alert.source.as_str()),
        });
        (command, format!("POST /revocations {body}"))
    }

    /// The plain-text note.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{}", self.subject());
        let _ = writeln!(
            t,
            "Company: {} ({})",
            self.org.company_name, self.org.company_id
        );
        let _ = writeln!(t, "Alert: {}", one_line(&self.alert.reason));
        let _ = writeln!(
            t,
            "Caps ([company.alerts]): max_contain_per_alert = {}, max_contain_per_hour = {}",
            self.settings.max_contain_per_alert, self.settings.max_contain_per_hour
        );
        let contained: Vec<&str> = self
            .contained
            .iter()
            .filter(|r| r.run_id.is_some())
            .map(|r| r.user_email.as_str())
            .collect();
        let _ = writeln!(t, "\nContained automatically ({}):", contained.len());
        contained.iter().for_each(|u| {
            let _ = writeln!(t, "  - {u}");
        });
        let _ = writeln!(
            t,
            "\nAwaiting approval ({}) - nothing was removed for them:",
            self.awaiting.len()
        );
        self.awaiting.iter().for_each(|u| {
            let _ = writeln!(t, "  - {}", u.user_email);
        });
        if !self.never_contain.is_empty() {
            let _ = writeln!(
                t,
                "\nNever contained automatically (never_contain) ({}) - reported only:",
                self.never_contain.len()
            );
            self.never_contain.iter().for_each(|u| {
                let _ = writeln!(t, "  - {}", u.user_email);
            });
        }
        let (command, api) = self.approve("<address>");
        let _ = writeln!(
            t,
            "\nTo approve containing one of them, an operator runs:\n  {command}\nor, on AWS, sends (SigV4-signed):\n  {api}"
        );
        let _ = writeln!(t, "\nRef: {}", self.marker());
        t
    }

    /// The email body: the same as the note, as HTML.
    pub fn html(&self) -> String {
        let mut h = String::from("<html><body style=\"font-family:Segoe UI,Arial,sans-serif\">");
        let _ = write!(h, "<h2>{}</h2>", esc(&self.subject()));
        for line in self.text().lines().skip(1) {
            if line.is_empty() {
                h.push_str("<br>");
            } else {
                let _ = write!(h, "<div style=\"white-space:pre-wrap\">{}</div>", esc(line));
            }
        }
        h.push_str("</body></html>");
        h
    }
}

/// Sends the notice once per alert to the PSA and mail `reached` reaches, and says what became of it. Only the
/// ledger's failure is an error.
pub(super) async fn tell_approval(
    ledger: &dyn AlertLedger,
    reached: &mut Reached<'_>,
    notice: &ApprovalNotice<'_>,
) -> Result<ApprovalNoticeSent, StoreError> {
    let mut sent = ApprovalNoticeSent {
        alert_id: notice.alert.alert_id.clone(),
        reference: notice.marker(),
        ticket_id: None,
        sent_before: false,
        outcome: Vec::new(),
    };
    let until = Utc::now() + ALERT_DEDUPE_WINDOW;
    if !ledger.mark_alert(&notice.key(), until).await? {
        sent.sent_before = true;
        sent.outcome
            .push("the approval notice of this alert was sent before".into());
        return Ok(sent);
    }
    match reached.connections(notice.org).await {
        Ok(connections) => deliver(connections.notify(), notice, &mut sent).await,
        Err(why) => sent.outcome.push(format!(
            "approval notice not sent ({why}); the users are listed in this answer"
        )),
    }
    info!(company_id = %notice.org.company_id, alert_id = %notice.alert.alert_id, awaiting = notice.awaiting.len(), never_contain = notice.never_contain.len(), "approval notice");
    Ok(sent)
}

/// The ticket and note (when the company has a PSA), then the email.
async fn deliver(notify: Notify<'_>, notice: &ApprovalNotice<'_>, sent: &mut ApprovalNoticeSent) {
    let org = notice.org;
    let text = notice.text();
    let told = &mut sent.outcome;
    if org.psa_kind.has_tickets() {
        let ticket = NewTicket {
            summary: marked_summary(
                &format!(
                    "Approve containment: {} user(s) of {} incident {}",
                    notice.awaiting.len() + notice.never_contain.len(),
                    notice.alert.source.as_str(),
                    notice.alert.incident_id
                ),
                &notice.marker(),
            ),
            board: org.m365_permission_ticket_board.clone(),
            company: org.psa_company.clone(),
            initial_description:
                "Users of a security alert await containment approval: see the note.".into(),
        };
        match notify.psa.create_ticket(&ticket).await {
            Ok(id) => {
                match notify.psa.add_note(&id, &text).await {
                    Ok(()) => told.push(format!("PSA ticket {id}: approval note added")),
                    Err(e) => told.push(format!(
                        "PSA ticket {id}: the approval note could not be added: {e}"
                    )),
                }
                sent.ticket_id = Some(id);
            }
            Err(e) => told.push(format!("approval ticket could not be created: {e}")),
        }
    } else {
        told.push(format!(
            "company '{}' has no PSA: no approval ticket",
            org.company_id
        ));
    }
    let to = org.m365_permission_notification_recipients.clone();
    if to.is_empty() {
        told.push(
            "no approval email: the company has no m365_permission_notification_recipients".into(),
        );
        return;
    }
    let mail = OutgoingMail {
        from: org.notification_sender.clone(),
        to: to.clone(),
        subject: notice.subject(),
        html_body: notice.html(),
        attachments: Vec::new(),
    };
    match notify.mailer.send(&mail).await {
        Ok(()) => told.push(format!("approval email sent to {}", to.join(", "))),
        Err(e) => {
            warn!(reason = %e, "approval email not sent");
            told.push(format!("approval email could not be sent: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertSourceKind;

    /// An incident id is the alert's text: in the approval command only its plain characters
    /// are kept, so pasting the command runs nothing else.
    #[test]
    fn the_approval_command_keeps_only_plain_characters_of_the_incident_id() {
        let org = OrgSettings::from_fixture(&serde_json::json!({
            "tenant_id": "3f6d2c1a-8b4e-4f7a-9c2d-1e5b7a9c0d4f",
            "organization": {"company_id": "acme", "company_name": "Acme",
                "m365_permission_ticket_board": "b", "notification_sender": "it@acme.example"}
        }))
        .unwrap();
        let settings = AlertSettings::default();
        let alert = AlertedUser {
            source: AlertSourceKind::Sentinel,
            alert_id: "x".into(),
            incident_id: "INC-7\"; rm -rf ~ #".into(),
            severity: Some("high".into()),
            user_email: "a@acme.example".into(),
            reason: "Microsoft Sentinel incident".into(),
        };
        let held = [HeldUser {
            user_email: "b@acme.example".into(),
            alert_source: "sentinel".into(),
            alert_id: "x".into(),
            incident_id: alert.incident_id.clone(),
        }];
        let notice = ApprovalNotice {
            org: &org,
            settings: &settings,
            alert: &alert,
            contained: &[],
            awaiting: &held,
            never_contain: &[],
        };
        let (command, _) = notice.approve("b@acme.example");
        assert!(
            command.ends_with("--reason \"approved: sentinel incident INC-7___rm_-rf____\""),
            "{command}"
        );
        assert!(notice.text().contains("b@acme.example"));
        assert!(!notice.html().contains("7\";"), "escaped in HTML");
    }
}
