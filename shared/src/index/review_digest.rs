//! The access review's digest: one ticket, one note and one email for the whole review —
//! what it found and, with `--revoke`, what each revocation and cleanup did — instead of a
//! note and a mail per trustee. The CLI's `review` sends it; on AWS the scheduled `review`
//! job does.

use super::review::{Review, ReviewAction};
use crate::model::{validate_email, OrgSettings};
use crate::ports::{NewTicket, Notify, OutgoingMail};
use crate::render;
use serde::Serialize;
use tracing::{info, warn};

/// Where the digest went, and what could not be done (loud: the caller reports it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DigestDelivery {
    pub ticket_id: Option<String>,
    pub mailed_to: Vec<String>,
    /// Why there is no ticket (the company uses no PSA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_ticket: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The digest's marker: the company and the day of the review. A retry of the same day's
/// digest finds the ticket and the note that carry it rather than making them again.
pub fn digest_marker(org: &OrgSettings, review: &Review) -> String {
    format!(
        "access-review {} {}",
        org.company_id,
        review.reviewed_at.format("%Y-%m-%d")
    )
}

/// Notes the digest on `ticket` (none: the day's digest ticket, made once), then mails it to
/// the requestor (when their domain may receive reports) and the company's recipients.
pub async fn deliver_digest(
    notify: Notify<'_>,
    org: &OrgSettings,
    review: &Review,
    actions: &[ReviewAction],
    ticket: Option<&str>,
    requested_by: Option<&str>,
) -> DigestDelivery {
    let marker = digest_marker(org, review);
    let text = render::digest_text(review, actions, &marker);
    let mut out = DigestDelivery::default();
    if org.psa_kind.has_tickets() {
        match digest_ticket(notify, org, review, actions, ticket, &marker).await {
            Ok(id) => {
                match notify.psa.has_note(&id, &marker).await {
                    Ok(true) => info!(ticket = %id, "the digest's note is on the ticket already"),
                    Ok(false) | Err(_) => {
                        if let Err(e) = notify.psa.add_note(&id, &text).await {
                            out.errors.push(format!(
                                "the digest could not be noted on ticket {id}: {}",
                                e.reason()
                            ));
                        }
                    }
                }
                out.ticket_id = Some(id);
            }
            Err(e) => out.errors.push(e),
        }
    } else {
        out.no_ticket = Some(format!(
            "company '{}' uses no PSA: the digest goes by email only",
            org.company_id
        ));
    }
    let requestor = requested_by.and_then(|r| validate_email("requested_by", r).ok());
    let (to, left_out) = crate::steps::report_recipients(org, requestor);
    if let Some(r) = left_out {
        out.errors.push(format!(
            "the digest was not mailed to {r}: its domain is not allowed to receive reports"
        ));
    }
    if to.is_empty() {
        out.errors
            .push("the digest was mailed to no one: the company has no report recipients".into());
        return out;
    }
    let mail = OutgoingMail {
        from: org.notification_sender.clone(),
        to: to.clone(),
        subject: format!(
            "Revoke365: access review of {} — {}",
            org.company_name,
            render::digest_headline(review, actions)
        ),
        html_body: render::digest_html(review, actions, &marker),
        attachments: Vec::new(),
    };
    match notify.mailer.send(&mail).await {
        Ok(()) => out.mailed_to = to,
        Err(e) => {
            warn!(error = %e, "the digest could not be mailed");
            out.errors
                .push(format!("the digest could not be mailed: {}", e.reason()));
        }
    }
    out
}

/// The ticket the digest goes on: the one given, else the day's digest ticket (found by its
/// marker, else made now on the company's board).
async fn digest_ticket(
    notify: Notify<'_>,
    org: &OrgSettings,
    review: &Review,
    actions: &[ReviewAction],
    given: Option<&str>,
    marker: &str,
) -> Result<String, String> {
    if let Some(id) = given {
        return Ok(id.to_string());
    }
    match notify.psa.find_ticket(marker).await {
        Ok(Some(id)) => return Ok(id),
        Ok(None) => {}
        Err(e) => warn!(error = %e, "could not look for the day's digest ticket; making one"),
    }
    let summary = format!(
        "Mailbox access review: {} — {}",
        org.company_name,
        render::digest_headline(review, actions)
    );
    let ticket = NewTicket {
        summary: render::marked_summary(&summary, marker),
        board: org.m365_permission_ticket_board.clone(),
        company: org.psa_company.clone(),
        initial_description: format!(
            "Revoke365 access review of snapshot {}: {} trustee(s), {} grant(s).",
            review.snapshot_id,
            review.trustees.len(),
            review.grants
        ),
    };
    notify.psa.create_ticket(&ticket).await.map_err(|e| {
        format!(
            "no ticket for the digest could be made {}: {}",
            org.new_ticket_place(),
            e.reason()
        )
    })
}
