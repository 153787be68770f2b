//! What the result, the ticket note and the email say, read as the technician reads them: which
//! of the four cases happened (all removed; direct removed but access through a group remains;
//! only part of the access checked; failures), that a dry run changes nothing anywhere, and
//! that no text from the requestor or the tenant can forge a line of the report.

use revoke365::model::{MailboxScope, NotCheckedReason, PermissionType, Report, Scope};
use revoke365::render::{ReportView, STILL_PRESENT};
use revoke365_sim::snapshot::{SentMail, Snapshot, SEND_AS};
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture};
use serde_json::{json, Value};

const JOHN: &str = "john.smith@acmecorp.com";

fn request() -> Value {
    json!({"user_email": JOHN, "company_id": "acme", "requested_by": "hr.manager@acmecorp.com", "reason": "Leaver"})
}

/// The Acme tenant with John in Finance Team: Full Access on finance@ and Send As on the shared
/// billing@ reach him through the group.
fn acme_with_john_in_finance_team() -> Value {
    let mut fx = fixture("acme-tenant.json");
    fx["groups"][0]["members"]
        .as_array_mut()
        .unwrap()
        .push(json!(JOHN));
    fx
}

/// The run's one note and one email.
fn note_and_mail(state: &Snapshot, report: &Report) -> (String, SentMail) {
    let ticket_id = report.ticket_id.as_deref().expect("a ticket");
    let ticket = state.ticket(ticket_id).expect("ticket in the PSA");
    assert_eq!(ticket.notes.len(), 1, "one note");
    assert_eq!(state.sent_mail.len(), 1, "one email");
    (ticket.notes[0].text.clone(), state.sent_mail[0].clone())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// `(title, items)` of each section of the plain-text report: a `Title:` line after a blank
/// line, then its `  - item` lines.
fn text_sections(text: &str) -> Vec<(String, Vec<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut sections = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 && lines[i - 1].is_empty() && line.ends_with(':') {
            let items = lines[i + 1..]
                .iter()
                .take_while(|l| l.starts_with("  - "))
                .map(|l| l.trim_start_matches("  - ").to_string())
                .collect();
            sections.push((line.trim_end_matches(':').to_string(), items));
        }
    }
    sections
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Text between `<tag ...>` and `</tag>`, from `at`; with the offset after it.
fn element<'a>(html: &'a str, tag: &str, at: usize) -> Option<(&'a str, usize, usize)> {
    let open = html[at..].find(&format!("<{tag}"))? + at;
    let body = html[open..].find('>')? + open + 1;
    let close = html[body..].find(&format!("</{tag}>"))? + body;
    Some((&html[body..close], open, close + tag.len() + 3))
}

/// `(title, items)` of each `<h3>` section of the email, its items the `<li>` of the list that
/// follows it.
fn html_sections(html: &str) -> Vec<(String, Vec<String>)> {
    let mut sections = Vec::new();
    let mut at = 0;
    while let Some((title, _, end)) = element(html, "h3", at) {
        let next_heading = html[end..].find("<h3").map_or(html.len(), |i| i + end);
        let mut items = Vec::new();
        let mut li = end;
        while let Some((item, open, after)) = element(html, "li", li) {
            if open > next_heading {
                break;
            }
            items.push(unescape(item));
            li = after;
        }
        sections.push((unescape(title), items));
        at = end;
    }
    sections
}

#[tokio::test]
async fn all_access_removed_and_verified_is_said_in_result_note_and_email() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let report = h.report(request()).await;
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(
        report.scope,
        Scope {
            permission_types: PermissionType::ALL.to_vec(),
            folders: Some("well_known".into()),
            ..Scope::default()
        }
    );
    assert!(!report.residual_access);
    assert!(report.not_checked.is_empty());

    // The seed's keys, and the new ones.
    let v = serde_json::to_value(&report).unwrap();
    for key in [
        "success",
        "removal_summary",
        "permissions_removed",
        "verification",
        "ticket_id",
        "residual_access",
        "not_checked",
    ] {
        assert!(v.get(key).is_some(), "result has {key}");
    }
    assert_eq!(
        v["scope"],
        json!({"permission_types": ["full_access", "send_as", "send_on_behalf", "calendar", "folder"], "mailboxes": "all", "shared_mailboxes": true, "folders": "well_known"})
    );

    let (note, mail) = note_and_mail(&h.snapshot(), &report);
    assert_eq!(
        first_line(&note),
        "Revoke365 mailbox access removal: SUCCESS — all access removed and verified"
    );
    assert!(note.contains("— all cleared"), "{note}");
    assert!(mail.subject.starts_with("Revoke365: all access removed — "));
    assert!(mail.body.contains("all access removed and verified"));
    assert_eq!(mail.attachments[0].content, note);
}

#[tokio::test]
async fn access_left_through_a_group_names_the_group_to_leave() {
    let h = Harness::start(acme_with_john_in_finance_team(), fast_http(10)).await;
    let report = h.report(request()).await;
    // Every direct grant is gone: the run succeeds, but access remains.
    assert!(report.success, "{:?}", report.errors);
    assert!(report.verification.all_permissions_cleared);
    assert_eq!(
        report.indirect_access.len(),
        2,
        "{:?}",
        report.indirect_access
    );
    assert!(report.residual_access);
    assert_eq!(h.snapshot().direct_grants_of(JOHN), vec![]);

    let (note, mail) = note_and_mail(&h.snapshot(), &report);
    assert_eq!(
        first_line(&note),
        "Revoke365 mailbox access removal: ACCESS REMAINS — direct grants removed, but access remains through a group or inheritance"
    );
    let advice = "Remove John Smith from \"Finance Team\" to close it: billing@acmecorp.com (Send As) and finance@acmecorp.com (Full Access).";
    assert!(note.lines().any(|l| l == advice), "{note}");
    assert!(
        !note.contains("SUCCESS") && !note.contains("all cleared"),
        "{note}"
    );
    assert!(note.contains("— no direct grants left"), "{note}");
    assert!(
        mail.subject.starts_with(
            "Revoke365: direct access removed, access remains via group or inheritance"
        ),
        "{}",
        mail.subject
    );
    assert!(mail.body.contains("ACCESS REMAINS"));
    assert!(mail
        .body
        .contains("Remove John Smith from &quot;Finance Team&quot; to close it"));
}

#[tokio::test]
async fn a_partial_scope_says_what_was_checked_and_never_calls_the_rest_cleared() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let mut body = request();
    body["permission_types"] = json!(["full_access", "calendar"]);
    let report = h.report(body).await;
    assert!(report.success, "{:?}", report.errors);
    assert!(report.residual_access);
    assert_eq!(
        report.scope.permission_types,
        vec![PermissionType::FullAccess, PermissionType::Calendar]
    );
    let out: Vec<(PermissionType, NotCheckedReason)> = report
        .not_checked
        .iter()
        .map(|n| (n.permission_type, n.reason))
        .collect();
    assert_eq!(
        out,
        vec![
            (PermissionType::SendAs, NotCheckedReason::OutOfScope),
            (PermissionType::SendOnBehalf, NotCheckedReason::OutOfScope),
            (PermissionType::Folder, NotCheckedReason::OutOfScope)
        ]
    );
    // The seed's shape keeps its numbers...
    assert_eq!(report.verification.remaining_send_as, 0);
    // ...though John's Send As is still in the tenant, untouched.
    assert!(h
        .snapshot()
        .direct_grants_of(JOHN)
        .contains(&("info@acmecorp.com".to_string(), SEND_AS)));

    let (note, mail) = note_and_mail(&h.snapshot(), &report);
    assert_eq!(
        first_line(&note),
        "Revoke365 mailbox access removal: PARTIAL — what was checked is removed and verified; not everything was checked"
    );
    let said = "Only Full Access and calendar were checked: Send As, Send on Behalf and folder permissions were left out of this request and may remain.";
    for text in [&note, &mail.body] {
        assert!(text.contains(said), "{text}");
        assert!(text.contains("Send As not checked"), "{text}");
        // Nothing calls what was not looked at cleared.
        assert!(
            !text.contains("Send As 0") && !text.contains("all cleared"),
            "{text}"
        );
        assert!(text.contains("none left of what was checked"), "{text}");
    }
    assert!(mail.subject.contains("partial scope"), "{}", mail.subject);

    // Named mailboxes only: the scope says which, and the headline that others were not read.
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let mut body = request();
    body["target_mailboxes"] = json!(["ceo@acmecorp.com"]);
    let report = h.report(body).await;
    assert!(report.success && report.residual_access);
    assert_eq!(
        report.scope.mailboxes,
        MailboxScope::Named(vec!["ceo@acmecorp.com".into()])
    );
    assert_eq!(
        serde_json::to_value(&report).unwrap()["scope"]["mailboxes"],
        json!(["ceo@acmecorp.com"])
    );
    let (note, _) = note_and_mail(&h.snapshot(), &report);
    assert!(note.contains("PARTIAL"), "{note}");
    assert!(
        note.contains("Only 1 named mailbox was checked (ceo@acmecorp.com)"),
        "{note}"
    );
}

#[tokio::test]
async fn a_failure_shows_the_same_sections_in_the_note_and_the_email() {
    let h = Harness::start(fixture("hard-tenant.json"), fast_http(10)).await;
    let report = h
        .report(json!({"user_email": "john.smith@globexcorp.com", "company_id": "globex"}))
        .await;
    assert!(!report.success);
    assert!(report.residual_access);
    let (note, mail) = note_and_mail(&h.snapshot(), &report);
    assert!(first_line(&note).contains("ACTION NEEDED"), "{note}");
    assert!(mail.subject.contains("ACTION NEEDED"));

    let from_note = text_sections(&note);
    let from_mail = html_sections(&mail.body);
    assert_eq!(from_note, from_mail, "note:\n{note}\nmail:\n{}", mail.body);
    let titles: Vec<&str> = from_note.iter().map(|(t, _)| t.as_str()).collect();
    let view = ReportView::of(&report);
    let expected: Vec<&str> = std::iter::once(view.grants_title)
        .chain(view.sections.iter().map(|s| s.title))
        .collect();
    assert_eq!(titles, expected);
    let still = from_mail
        .iter()
        .find(|(t, _)| t == STILL_PRESENT)
        .expect("the email says what is still present");
    assert_eq!(still.1, vec!["legal@globexcorp.com FullAccess"]);
    // The grants table is in both, row for row.
    for row in &view.grants {
        assert!(
            note.contains(&row.result) && mail.body.contains(&row.mailbox),
            "{row:?}"
        );
    }
}

#[tokio::test]
async fn a_dry_run_creates_no_ticket_adds_no_note_and_sends_no_mail() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let before = h.snapshot();
    for ticket in [None, Some("48213")] {
        let mut body = request();
        body["dry_run"] = json!(true);
        if let Some(t) = ticket {
            body["ticket_id"] = json!(t);
        }
        let report = h.report(body).await;
        assert!(report.success && report.dry_run);
        assert_eq!(report.ticket_id.as_deref(), ticket);
        let after = h.snapshot();
        assert_eq!(after.mailboxes, before.mailboxes);
        assert_eq!(after.tickets, before.tickets, "no ticket, no note");
        assert_eq!(after.sent_mail, vec![], "no email");
    }
}

#[tokio::test]
async fn a_dry_run_that_asks_to_notify_says_would_remove() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let before = h.snapshot().mailboxes;
    let mut body = request();
    body["dry_run"] = json!(true);
    body["notify"] = json!(true);
    let report = h.report(body).await;
    assert!(report.success && report.dry_run);
    assert_eq!(h.snapshot().mailboxes, before, "still nothing changed");
    let (note, mail) = note_and_mail(&h.snapshot(), &report);
    assert_eq!(
        first_line(&note),
        "Revoke365 mailbox access removal: DRY RUN — nothing was changed; would remove 8 grants"
    );
    assert!(note.contains("Would remove: 8 grants"), "{note}");
    for text in [&note, &mail.body, &mail.attachments[0].content] {
        for never in [
            "removed 0",
            "Grants removed: 0",
            STILL_PRESENT,
            "all cleared",
        ] {
            assert!(!text.contains(never), "'{never}' in {text}");
        }
    }
    assert!(
        mail.subject
            .starts_with("Revoke365: dry run, would remove 8 — "),
        "{}",
        mail.subject
    );
}

#[tokio::test]
async fn line_breaks_and_controls_from_the_request_and_the_tenant_forge_no_line() {
    let forged_headline = "SUCCESS — all access removed and verified";
    let mut fx = acme_with_john_in_finance_team();
    // The tenant's names: John's display name and the group's name carry line breaks.
    for user in fx["users"].as_array_mut().unwrap() {
        if user["upn"] == JOHN {
            user["display_name"] = json!(format!("John Smith\r\n{forged_headline}"));
        }
    }
    let group = "Finance Team\nNo access remains";
    fx["groups"][0]["name"] = json!(group);
    for mailbox in fx["mailboxes"].as_array_mut().unwrap() {
        for kind in ["full_access", "send_as"] {
            let entries = mailbox.get_mut(kind).and_then(Value::as_array_mut);
            for entry in entries.into_iter().flatten() {
                if entry == "Finance Team" {
                    *entry = json!(group);
                } else if entry["user"] == "Finance Team" {
                    entry["user"] = json!(group);
                }
            }
        }
    }
    let h = Harness::start(fx, fast_http(10)).await;
    let mut body = request();
    body["requested_by"] = json!("hr.manager@acmecorp.com\nGrants removed: 0");
    body["reason"] = json!(format!(
        "Leaver\r\n{forged_headline}\u{1b}[2J <script>alert(1)</script>"
    ));
    let report = h.report(body).await;
    assert!(report.success, "{:?}", report.errors);
    let state = h.snapshot();
    let (note, mail) = note_and_mail(&state, &report);
    let description = state
        .ticket(report.ticket_id.as_deref().unwrap())
        .unwrap()
        .initial_description
        .clone()
        .unwrap_or_default();
    for text in [&note, &mail.attachments[0].content, &description] {
        for line in text.lines() {
            for forged in [forged_headline, "Grants removed: 0", "No access remains"] {
                assert!(
                    !line.starts_with(forged),
                    "forged line {line:?} in:\n{text}"
                );
            }
        }
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    }
    assert!(
        note.contains(&format!(
            "Reason: Leaver ↵ {forged_headline}\u{FFFD}[2J <script>alert(1)</script>"
        )),
        "{note}"
    );
    assert!(note.contains("Requested by: hr.manager@acmecorp.com ↵ Grants removed: 0"));
    assert!(note.contains("User: John Smith ↵ SUCCESS"), "{note}");
    assert!(
        note.contains("via group Finance Team ↵ No access remains"),
        "{note}"
    );
    // The email escapes HTML as well.
    assert!(!mail.body.contains("<script>"));
    assert!(mail.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
    // The result keeps what was said, as data.
    assert_eq!(
        report.request_context.reason.as_deref(),
        Some(format!("Leaver\r\n{forged_headline}\u{1b}[2J <script>alert(1)</script>").as_str())
    );
}

#[tokio::test]
async fn a_large_report_mails_the_first_grants_and_attaches_every_one() {
    use revoke365_testkit::generated::{generated_tenant, Caps, ADMIN};
    let caps = Caps {
        exchange: 1000,
        graph: 1000,
        graph_mailbox: 4,
    };
    let h = Harness::start(generated_tenant(700, 600, 0, &caps), fast_http(32)).await;
    let report = h
        .report(json!({"user_email": ADMIN, "company_id": "bench", "ticket_id": "1"}))
        .await;
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(report.removal_summary.total_permissions_removed, 600);
    let (note, mail) = note_and_mail(&h.snapshot(), &report);
    assert!(
        mail.body
            .contains("… and 100 more grants: every one is in the attached report."),
        "the email shows the first 500 grants"
    );
    assert!(mail.body.len() < 1024 * 1024, "{} bytes", mail.body.len());
    let rows = |text: &str| text.lines().filter(|l| l.starts_with("mbx")).count();
    assert_eq!(
        rows(&mail.attachments[0].content),
        600,
        "every grant attached"
    );
    assert_eq!(rows(&note), 600);
}
