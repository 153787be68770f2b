//! Telling people: the PSA ticket and note, and the email — each at most once per run.
//!
//! A dry run changes nothing anywhere: it creates no ticket, adds no note and sends no email
//! unless the request asked for them (`notify`).
//!
//! Each side effect's intent is recorded before it is attempted and its outcome after. A
//! verification that takes over a run whose holder died between the two finds the intent
//! without an outcome: the ticket and note carry the run id, so they are looked up instead of
//! made again; an email cannot be looked up, so it is never sent twice and the report says it
//! may not have been sent. The Teams card and the webhook post (`[company.notify]`) follow the
//! email's rule: at most once, and a failure is one of the report's errors (of a failed run,
//! one of its `notification_errors`).

use super::Notify;
use crate::error::{RemoteError, StepError};
use crate::model::{NotificationChannel, OrgSettings, Report, Run, RunFailure};
use crate::ports::{
    Attachment, Effect, EffectState, HookKind, NewTicket, OutgoingMail, RunNotice, RunStore,
};
use crate::render;
use tracing::{error, info, warn};

/// A finished run's result, as the ticket note and the email tell it.
pub(crate) trait Told {
    fn ticket_id(&self) -> Option<String>;
    fn set_ticket_id(&mut self, id: String);
    fn add_error(&mut self, error: String);
    /// A notification that could not be delivered (by default, one more error).
    fn add_notification_error(&mut self, _channel: NotificationChannel, error: String) {
        self.add_error(error);
    }
    /// Everything is told (or could not be): the result's own headline can be written.
    fn set_headline(&mut self) {}
    fn not_mailed(&mut self, address: String);
    /// The company has no PSA: say so (not an error).
    fn no_ticket(&mut self, why: String);
    fn note_text(&self) -> String;
    fn mail(&self, from: &str, to: Vec<String>) -> OutgoingMail;
    /// The outcome as posted to Teams and the company's webhook.
    fn notice(&self, org: &OrgSettings) -> RunNotice;
}

/// A run's status in its result's words (`completed_with_errors`, ...).
pub(crate) fn status_word(status: crate::model::RunStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Told for Report {
    fn ticket_id(&self) -> Option<String> {
        self.ticket_id.clone()
    }
    fn set_ticket_id(&mut self, id: String) {
        self.ticket_id = Some(id);
    }
    fn add_error(&mut self, error: String) {
        Report::add_error(self, error);
    }
    fn add_notification_error(&mut self, channel: NotificationChannel, error: String) {
        Report::add_notification_error(self, channel, error);
    }
    fn set_headline(&mut self) {
        self.headline = render::ReportView::of(self).headline.title;
    }
    fn not_mailed(&mut self, address: String) {
        self.not_mailed.push(address);
    }
    fn no_ticket(&mut self, why: String) {
        self.no_ticket = Some(why);
    }
    fn note_text(&self) -> String {
        render::text_report(self)
    }
    fn mail(&self, from: &str, to: Vec<String>) -> OutgoingMail {
        OutgoingMail {
            from: from.to_string(),
            to,
            subject: render::email_subject(self),
            html_body: render::email_html(self),
            attachments: vec![Attachment {
                name: format!("revoke365-{}.txt", self.run_id),
                content_type: "text/plain".into(),
                content: render::attachment_text(self).into_bytes(),
            }],
        }
    }
    fn notice(&self, org: &OrgSettings) -> RunNotice {
        RunNotice {
            event: "revocation.finished".into(),
            run_id: self.run_id.clone(),
            company_id: org.company_id.clone(),
            company_name: org.company_name.clone(),
            user_email: self.removal_summary.user_email.clone(),
            // Posted before the email and the note: the removal's outcome, which is what the
            // card's headline tells.
            success: self.removal_succeeded(),
            status: status_word(self.status),
            total_permissions_removed: self.removal_summary.total_permissions_removed,
            failures: self.errors.len() as u32,
            ticket_id: self.ticket_id.clone(),
            result_url: None,
        }
    }
}

/// Tells the run's outcome: picks the ticket (the named one when it is this company's, else a
/// new one), posts to Teams and the webhook, mails, and adds the note last, so that the email
/// names the posts that could not be delivered and the note names the email too. Failures
/// are recorded in the report as notification errors; they undo nothing.
pub(crate) async fn deliver_report(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    report: &mut impl Told,
) -> Result<(), StepError> {
    if !run.request.notifies() {
        info!(digest = run.request.digest, "no ticket, note or email of its own: a dry run that did not ask for them, or a run its caller reports in a digest");
        report.set_headline();
        return Ok(());
    }
    let ticket = if org.psa_kind.has_tickets() {
        report_ticket(store, notify, org, run, report).await?
    } else {
        info!(company_id = %org.company_id, "no PSA: no ticket or note, the report goes by email");
        report.no_ticket(no_psa(org));
        None
    };
    for (channel, e) in post_hooks(store, notify, org, run, &report.notice(org)).await? {
        report.add_notification_error(channel, e);
    }
    let (to, left_out) = recipients(org, run);
    if let Some(address) = left_out {
        report.not_mailed(address);
    }
    let mail = report.mail(&org.notification_sender, to);
    if let Err(e) = mail_once(store, notify, run, mail).await? {
        report.add_notification_error(NotificationChannel::Email, e);
    }
    if let Some(id) = ticket {
        let text = report.note_text();
        if let Err(e) = note_once(store, notify, run, &id, &text).await? {
            report.add_notification_error(
                NotificationChannel::Psa,
                format!("PSA note could not be added to ticket {id}: {e}"),
            );
        }
    }
    report.set_headline();
    Ok(())
}

/// The outcome posted to the company's Teams channel and webhook, each at most once; what
/// could not be posted is returned, by channel, for the report's errors, like an email that
/// could not be sent.
async fn post_hooks(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    notice: &RunNotice,
) -> Result<Vec<(NotificationChannel, String)>, StepError> {
    let mut problems = Vec::new();
    let Some(hooks) = &org.notify else {
        return Ok(problems);
    };
    for (kind, effect, url) in [
        (HookKind::Teams, Effect::PostTeams, &hooks.teams_webhook_url),
        (HookKind::Webhook, Effect::PostWebhook, &hooks.webhook_url),
    ] {
        let Some(url) = url else { continue };
        if let Err(e) = post_once(store, notify, run, (kind, effect), url, notice).await? {
            let channel = match kind {
                HookKind::Teams => NotificationChannel::Teams,
                HookKind::Webhook => NotificationChannel::Webhook,
            };
            problems.push((channel, e));
        }
    }
    Ok(problems)
}

/// A run that failed, as posted to Teams and the webhook.
fn failure_notice(run: &Run, org: &OrgSettings, removed: u32) -> RunNotice {
    let event = match run.kind() {
        crate::model::RunKind::Restore => "restore.finished",
        _ => "revocation.finished",
    };
    RunNotice {
        event: event.into(),
        run_id: run.run_id.to_string(),
        company_id: org.company_id.clone(),
        company_name: org.company_name.clone(),
        user_email: run.request.user_email.clone(),
        success: false,
        status: status_word(crate::model::RunStatus::Failed),
        total_permissions_removed: removed,
        failures: 1,
        ticket_id: run.request.ticket_id.clone(),
        result_url: None,
    }
}

/// One post of the run's outcome, made at most once (a post cannot be looked up). The inner
/// error is the text for the report.
async fn post_once(
    store: &dyn RunStore,
    notify: Notify<'_>,
    run: &Run,
    (kind, effect): (HookKind, Effect),
    url: &str,
    notice: &RunNotice,
) -> Result<Result<(), String>, StepError> {
    let label = kind.label();
    match store.begin_effect(&run.run_id, effect).await? {
        EffectState::Started => {}
        EffectState::Done { error: None, .. } => return Ok(Ok(())),
        EffectState::Done { error: Some(e), .. } => {
            return Ok(Err(format!("the {label} post failed: {e}")))
        }
        EffectState::Unknown => {
            return Ok(Err(format!(
                "the {label} post may not have been made: an earlier attempt was interrupted, and a post is never made twice"
            )))
        }
    }
    let posted = notify.notifier.post(kind, url, notice).await;
    let outcome = match &posted {
        Ok(()) => done(None),
        Err(e) => failed(e),
    };
    store.end_effect(&run.run_id, effect, &outcome).await?;
    match &posted {
        Ok(()) => info!(run_id = %run.run_id, hook = label, "outcome posted"),
        Err(e) => warn!(run_id = %run.run_id, hook = label, error = %e, "outcome not posted"),
    }
    Ok(posted.map_err(|e| format!("the {label} post failed: {e}")))
}

/// Why a company's report goes to no ticket.
fn no_psa(org: &OrgSettings) -> String {
    format!(
        "company '{}' has no PSA (psa_kind = \"none\"): no ticket or note was written; the report went by email",
        org.company_id
    )
}

/// The ticket the report's note goes to (the named one when it is this company's, else a new
/// one), set as the report's; `None`, with the reason in the report, when there is none.
async fn report_ticket(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    report: &mut impl Told,
) -> Result<Option<String>, StepError> {
    let given = report.ticket_id();
    let choice = target_ticket(store, notify, org, run, given.as_deref()).await?;
    if let Some(why) = &choice.passed_over {
        report.add_error(format!(
            "{why}: the report goes to a new ticket {} instead",
            org.new_ticket_place()
        ));
    }
    match &choice.ticket {
        Ok(id) => {
            report.set_ticket_id(id.clone());
            Ok(Some(id.clone()))
        }
        Err(e) => {
            report.add_notification_error(NotificationChannel::Psa, choice.describe(e));
            Ok(None)
        }
    }
}

/// Fails a run that cannot go on, after telling its ticket and recipients why (so that what
/// could not be told is part of the run's record, as `failure.notification_errors`). A run
/// that already finished keeps its result and is not told again.
pub async fn fail_and_notify(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    failure: RunFailure,
) -> Result<(), StepError> {
    let current = store.get_run(&run.run_id).await?;
    let run = current.as_ref().unwrap_or(run);
    if run.status.is_terminal() {
        return Ok(());
    }
    let mut failure = failure;
    failure.notification_errors = notify_failure(store, notify, org, run, &failure).await;
    store.fail_run(&run.run_id, &failure).await?;
    Ok(())
}

/// A run that failed after it was accepted still leaves a note on its ticket (a new ticket
/// when it had none, or when the one it named is not this company's) and an email, saying
/// what failed and what was already removed. Failure to notify is logged loudly and returned
/// for the run's record.
pub async fn notify_failure(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    failure: &RunFailure,
) -> Vec<String> {
    if !run.request.notifies() {
        info!(run_id = %run.run_id, digest = run.request.digest, "run failed: no ticket, note or email of its own (a dry run that did not ask for them, or a run its caller reports in a digest)");
        return Vec::new();
    }
    let (removed, removed_count) = match store.items(&run.run_id).await {
        Ok(items) => {
            let removed: Vec<String> = items
                .into_iter()
                .filter(|i| i.status.removed_by_this_run())
                .map(|i| format!("{} {}", i.grant.mailbox, i.grant.right.report_name()))
                .collect();
            let count = removed.len() as u32;
            (removed, count)
        }
        Err(e) => (
            vec![format!("(the removed grants could not be read: {e})")],
            0,
        ),
    };
    let text = render::failure_text(run, org, failure, &removed);
    let mut problems = Vec::new();
    if !org.psa_kind.has_tickets() {
        info!(run_id = %run.run_id, "{}", no_psa(org));
    } else {
        failure_note(store, notify, org, run, &text, &mut problems).await;
    }
    let mail = OutgoingMail {
        from: org.notification_sender.clone(),
        to: recipients(org, run).0,
        subject: render::failure_subject(run, org),
        html_body: render::failure_html(&text),
        attachments: Vec::new(),
    };
    match mail_once(store, notify, run, mail).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(e),
        Err(e) => problems.push(format!("failure email: {e}")),
    }
    let notice = failure_notice(run, org, removed_count);
    match post_hooks(store, notify, org, run, &notice).await {
        Ok(failed) => problems.extend(failed.into_iter().map(|(_, e)| e)),
        Err(e) => problems.push(format!("failure post: {e}")),
    }
    for p in &problems {
        error!(run_id = %run.run_id, problem = %p, "the failure of a run could not be notified");
    }
    problems
}

/// The failure note on the run's ticket (a new one when it had none, or named another
/// company's); what could not be written goes to `problems`.
async fn failure_note(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    text: &str,
    problems: &mut Vec<String>,
) {
    match target_ticket(store, notify, org, run, run.request.ticket_id.as_deref()).await {
        Ok(choice) => {
            if let Some(why) = &choice.passed_over {
                warn!(run_id = %run.run_id, reason = %why, "failure note goes to a new ticket");
            }
            match &choice.ticket {
                Ok(id) => match note_once(store, notify, run, id, text).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => problems.push(format!(
                        "failure note could not be added to ticket {id}: {e}"
                    )),
                    Err(e) => problems.push(format!("failure note on ticket {id}: {e}")),
                },
                Err(e) => problems.push(format!("failure note: {}", choice.describe(e))),
            }
        }
        Err(e) => problems.push(format!("failure ticket: {e}")),
    }
}

/// Where a run's report or failure note goes.
struct TicketChoice {
    /// The ticket, or why there is none.
    ticket: Result<String, RemoteError>,
    /// The ticket the request named, when it was checked and passed over.
    given: Option<String>,
    /// Why the named ticket was passed over (another company's, or gone).
    passed_over: Option<String>,
}

impl TicketChoice {
    /// The report's words for a PSA error in choosing the ticket.
    fn describe(&self, e: &RemoteError) -> String {
        match (&self.given, &self.passed_over) {
            (Some(id), None) => format!(
                "the PSA could not say which company ticket {id} belongs to, so nothing was written to it: {e}"
            ),
            _ => format!("PSA ticket could not be created: {e}"),
        }
    }
}

/// The request's ticket when the PSA says it is this company's; otherwise (none named, or
/// one of another company, or one that does not exist) the run's own new ticket on the org's
/// board. A report never lands on another customer's ticket, and when the PSA cannot say
/// whose a ticket is, nothing is written to it.
async fn target_ticket(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    given: Option<&str>,
) -> Result<TicketChoice, StepError> {
    let mut passed_over = None;
    if let Some(id) = given {
        match notify.psa.ticket_company(id).await {
            Ok(Some(company)) if company.is(&org.psa_company) => {
                return Ok(TicketChoice {
                    ticket: Ok(id.to_string()),
                    given: Some(id.to_string()),
                    passed_over: None,
                })
            }
            Ok(Some(_)) => {
                passed_over = Some(format!(
                    "ticket {id} belongs to another company in the PSA, not to '{}'",
                    org.psa_company
                ))
            }
            Ok(None) => passed_over = Some(format!("ticket {id} does not exist in the PSA")),
            Err(e) => {
                return Ok(TicketChoice {
                    ticket: Err(e),
                    given: Some(id.to_string()),
                    passed_over: None,
                })
            }
        }
    }
    Ok(TicketChoice {
        ticket: ticket_once(store, notify, org, run).await?,
        given: given.map(str::to_string),
        passed_over,
    })
}

/// The org's recipients, and the requestor when the company allows reports to go to their
/// domain; the requestor left out, if any, is returned too. A request cannot send a
/// customer's report to an address it merely names.
fn recipients(org: &OrgSettings, run: &Run) -> (Vec<String>, Option<String>) {
    report_recipients(org, run.request.requestor_email())
}

/// Who gets a report: the requestor (an address whose domain may receive reports; else it is
/// the one left out) and the company's recipients, each once.
pub(crate) fn report_recipients(
    org: &OrgSettings,
    requestor: Option<String>,
) -> (Vec<String>, Option<String>) {
    let mut to: Vec<String> = Vec::new();
    let mut left_out = None;
    if let Some(requestor) = requestor {
        if org.may_receive_report(&requestor) {
            to.push(requestor);
        } else {
            warn!(requestor = %requestor, "the requestor's domain is not allowed to receive reports; not mailed");
            left_out = Some(requestor);
        }
    }
    for r in &org.m365_permission_notification_recipients {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(r)) {
            to.push(r.clone());
        }
    }
    (to, left_out)
}

/// The run's ticket: created once, found by the run id it carries when an earlier attempt
/// may have created it. The outer error is the store's; the inner the PSA's.
async fn ticket_once(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
) -> Result<Result<String, RemoteError>, StepError> {
    let marker = run.run_id.to_string();
    match store
        .begin_effect(&run.run_id, Effect::CreateTicket)
        .await?
    {
        EffectState::Done {
            detail: Some(id), ..
        } => return Ok(Ok(id)),
        // Interrupted, or failed before: it may exist all the same (a timeout).
        EffectState::Unknown | EffectState::Done { detail: None, .. } => {
            match notify.psa.find_ticket(&marker).await {
                Ok(Some(id)) => {
                    warn!(ticket = %id, "an interrupted attempt had created the ticket; using it");
                    store
                        .end_effect(&run.run_id, Effect::CreateTicket, &done(Some(id.clone())))
                        .await?;
                    return Ok(Ok(id));
                }
                // Not created: creating it now makes the only one.
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        EffectState::Started => {}
    }
    let ticket = NewTicket {
        summary: render::ticket_summary(run, org),
        board: org.m365_permission_ticket_board.clone(),
        company: org.psa_company.clone(),
        initial_description: render::ticket_description(run),
    };
    let created = notify.psa.create_ticket(&ticket).await;
    let outcome = match &created {
        Ok(id) => done(Some(id.clone())),
        Err(e) => failed(e),
    };
    store
        .end_effect(&run.run_id, Effect::CreateTicket, &outcome)
        .await?;
    Ok(created)
}

/// The run's one note on `ticket_id`, looked up by the run id it carries when an earlier
/// attempt may have added it.
async fn note_once(
    store: &dyn RunStore,
    notify: Notify<'_>,
    run: &Run,
    ticket_id: &str,
    text: &str,
) -> Result<Result<(), RemoteError>, StepError> {
    let marker = run.run_id.to_string();
    match store.begin_effect(&run.run_id, Effect::AddNote).await? {
        EffectState::Done { error: None, .. } => return Ok(Ok(())),
        EffectState::Unknown | EffectState::Done { .. } => {
            match notify.psa.has_note(ticket_id, &marker).await {
                Ok(true) => {
                    warn!(ticket = %ticket_id, "an interrupted attempt had added the note");
                    store
                        .end_effect(&run.run_id, Effect::AddNote, &done(None))
                        .await?;
                    return Ok(Ok(()));
                }
                Ok(false) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        EffectState::Started => {}
    }
    let added = notify.psa.add_note(ticket_id, text).await;
    let outcome = match &added {
        Ok(()) => done(None),
        Err(e) => failed(e),
    };
    store
        .end_effect(&run.run_id, Effect::AddNote, &outcome)
        .await?;
    Ok(added)
}

/// The run's email, sent at most once. The inner error is the text for the report.
async fn mail_once(
    store: &dyn RunStore,
    notify: Notify<'_>,
    run: &Run,
    mail: OutgoingMail,
) -> Result<Result<(), String>, StepError> {
    if mail.to.is_empty() {
        return Ok(Err(
            "no notification sent: no requestor address the company allows reports to go to, and no m365_permission_notification_recipients".into(),
        ));
    }
    match store.begin_effect(&run.run_id, Effect::SendMail).await? {
        EffectState::Started => {}
        EffectState::Done { error: None, .. } => return Ok(Ok(())),
        EffectState::Done { error: Some(e), .. } => {
            return Ok(Err(format!("notification email could not be sent: {e}")))
        }
        EffectState::Unknown => {
            return Ok(Err(
                "the notification email may not have been sent: an earlier attempt was interrupted, and an email is never sent twice".into(),
            ))
        }
    }
    let sent = notify.mailer.send(&mail).await;
    let outcome = match &sent {
        Ok(()) => done(None),
        Err(e) => failed(e),
    };
    store
        .end_effect(&run.run_id, Effect::SendMail, &outcome)
        .await?;
    Ok(sent.map_err(|e| format!("notification email could not be sent: {e}")))
}

fn done(detail: Option<String>) -> EffectState {
    EffectState::Done {
        detail,
        error: None,
    }
}

fn failed(e: &RemoteError) -> EffectState {
    EffectState::Done {
        detail: None,
        error: Some(e.to_string()),
    }
}
