//! Generated tenants for the benches and the scale test: many mailboxes, limits the client is
//! not told.

use serde_json::{json, Value};

pub const DOMAIN: &str = "bench.example";
pub const LEAVER: &str = "leaver@bench.example";
/// Holds Full Access on the first `admin_grants` mailboxes.
pub const ADMIN: &str = "admin@bench.example";

/// What the generated tenant allows in flight (429 above it).
pub struct Caps {
    pub exchange: u64,
    pub graph: u64,
    pub graph_mailbox: u64,
}

/// The mailbox-level types a generated tenant's runs cover (its org names them): what the
/// benches and the scale test measure. [`with_folders`] adds folder permissions (all five).
pub const MAILBOX_TYPES: [&str; 4] = ["full_access", "send_as", "send_on_behalf", "calendar"];

/// `mailboxes` mailboxes, every 50th shared. The leaver holds one kind of grant on every
/// tenth (Full Access, calendar delegate, Send As, Send on Behalf in turn) and Full Access on
/// every shared mailbox; `other@` holds Full Access and calendar Reviewer on all of them.
pub fn generated_tenant(
    mailboxes: usize,
    admin_grants: usize,
    latency_ms: u64,
    caps: &Caps,
) -> Value {
    let other = format!("other@{DOMAIN}");
    let mut users = vec![
        json!({"upn": LEAVER, "display_name": "Leaving User"}),
        json!({"upn": other, "display_name": "Other User"}),
        json!({"upn": ADMIN, "display_name": "IT Admin"}),
    ];
    let mut boxes = Vec::new();
    for i in 0..mailboxes {
        let upn = format!("mbx{i:05}@{DOMAIN}");
        users.push(json!({"upn": upn, "display_name": format!("Mailbox {i}")}));
        let shared = i % 50 == 7;
        let mut full_access = vec![json!({"user": other})];
        let mut calendar = vec![json!({"user": other, "access_rights": "Reviewer"})];
        let mut m = json!({"upn": upn, "display_name": format!("Mailbox {i}"),
            "type": if shared { "SharedMailbox" } else { "UserMailbox" }});
        match i % 40 {
            0 => full_access.push(json!({"user": LEAVER})),
            10 => {
                calendar.push(json!({"user": LEAVER, "access_rights": "Editor", "delegate": true}))
            }
            20 => m["send_as"] = json!([LEAVER]),
            30 => m["send_on_behalf"] = json!([LEAVER]),
            _ => {}
        }
        if shared {
            full_access.push(json!({"user": LEAVER}));
        }
        if i < admin_grants {
            full_access.push(json!({"user": ADMIN}));
        }
        m["full_access"] = json!(full_access);
        m["calendar"] = json!(calendar);
        boxes.push(m);
    }
    json!({
        "tenant_id": "b3a7c1d2-0000-4000-8000-0000000000be",
        "organization": {"company_id": "bench", "company_name": "Bench Ltd", "m365_permission_ticket_board": "Service Desk",
            "m365_permission_removal_scope": MAILBOX_TYPES, "m365_permission_notification_recipients": ["secops@msp.example"],
            "notification_sender": format!("mbx00001@{DOMAIN}")},
        "users": users, "groups": [], "mailboxes": boxes,
        "psa_tickets": [{"id": "1", "company_id": "bench", "summary": "bench"}],
        "sim": {"latency_ms": latency_ms, "page_size": 1000, "retry_after_secs": 1,
                "exchange_concurrency_cap": caps.exchange, "graph_concurrency_cap": caps.graph,
                "graph_mailbox_concurrency_cap": caps.graph_mailbox}
    })
}

/// The grants `LEAVER` holds in a generated tenant of `mailboxes`.
pub fn leaver_grants(mailboxes: usize) -> usize {
    (0..mailboxes)
        .map(|i| usize::from(i % 10 == 0) + usize::from(i % 50 == 7))
        .sum()
}

/// The user folders every mailbox of [`with_folders`] has besides the well-known ones.
pub const USER_FOLDERS: [&str; 4] = [
    "\\Inbox\\Projects",
    "\\Inbox\\Projects\\Alpha",
    "\\Archive 2023",
    "\\Invoices",
];

/// A generated tenant with folder permissions, its org covering all five types: every mailbox
/// has [`USER_FOLDERS`]; `other@` holds Reviewer on every Inbox; the leaver holds, on the
/// mailboxes `i % 40` = 5, 15, 25, 35 in turn, Reviewer on the Inbox, Editor on Tasks,
/// Reviewer on the deep `\Inbox\Projects\Alpha` (found only with all folders or a
/// snapshot), and Reviewer on a secondary calendar (`\Calendar\Team`).
pub fn with_folders(mut tenant: Value) -> Value {
    tenant["organization"]["m365_permission_removal_scope"] = json!([]);
    let other = format!("other@{DOMAIN}");
    for (i, m) in tenant["mailboxes"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut folders: Vec<Value> = USER_FOLDERS
            .iter()
            .map(|path| json!({"path": path}))
            .collect();
        folders.push(json!({"path": "\\Inbox", "permissions": [{"user": other, "access_rights": "Reviewer"}]}));
        let leaver = |rights: &str| json!([{"user": LEAVER, "access_rights": rights}]);
        match i % 40 {
            5 => folders[4]["permissions"]
                .as_array_mut()
                .unwrap()
                .push(json!({"user": LEAVER, "access_rights": "Reviewer"})),
            15 => folders.push(json!({"path": "\\Tasks", "permissions": leaver("Editor")})),
            25 => folders[1]["permissions"] = leaver("Reviewer"),
            35 => {
                folders.push(json!({"path": "\\Calendar\\Team", "permissions": leaver("Reviewer")}))
            }
            _ => {}
        }
        m["folders"] = json!(folders);
    }
    tenant
}

/// The folder and secondary-calendar grants `LEAVER` holds in [`with_folders`] of
/// `mailboxes`: those a run on the well-known folders finds, and the deep ones.
pub fn leaver_folder_grants(mailboxes: usize) -> (usize, usize) {
    let count = |r: usize| (0..mailboxes).filter(|i| i % 40 == r).count();
    (count(5) + count(15) + count(35), count(25))
}
