//! A randomized check of the invariants that no hand-written test can walk all the paths of.
//!
//! Each scenario is made from one seed: a tenant (the leaver, lookalikes with the same display
//! name or a similar UPN, shared mailboxes, security and distribution groups holding rights with
//! and without the leaver, inherited and Deny entries, orphaned SIDs, names that resolve to
//! nothing, Send on Behalf delegates, calendar roles, folder permissions — the leaver's on
//! well-known folders, the display-name twin's and groups' anywhere —, transient faults and
//! paging), then a
//! sequence of operations — runs (random types, target mailboxes, keep-shared, dry runs, a
//! mistyped mailbox), restores with random filters (each done twice, sometimes dry first),
//! cleanups of dead and of live values, sweeps with their review. After every operation the
//! simulator's own state is the oracle:
//!
//! - I1 nothing outside the request's scope is removed: never a lookalike's, a group's, an
//!   inherited or a Deny entry, never a folder right of anyone but the run's user; a cleanup only what resolves to nothing, and nothing for a value
//!   that names someone;
//! - I2 the report equals the tenant: `total_permissions_removed` is what left the tenant,
//!   `success` only when nothing in scope is left, `remaining_*` never more than what is left
//!   (and the type unproven when less), `residual_access` whenever any access is left;
//! - I3 a restore adds back exactly what it was asked for and only the run's user, a second adds
//!   nothing, a dry run changes nothing;
//! - I5 a dry run changes nothing and tells no one;
//! - I6 a contain run's identity actions (sessions, sign-in, app consents, risk) touch only the
//!   run's user, only as the company's policy says, only his own consents that reach mail, and
//!   only in a live contain run;
//! - a review lists as dead only what is dead.
//!
//! A failure prints the seed and the shortest sequence of operations that still fails.
//! `REVOKE365_FUZZ_SCENARIOS` sets how many scenarios run (CI: the default below),
//! `REVOKE365_FUZZ_SEED` the first seed.

use crate::permission_index::IndexHarness;
use revoke365::model::{Report, RunStatus};
use revoke365::ports::Connector;
use revoke365_sim::Snapshot;
use revoke365_testkit::fast_http;
use revoke365_testkit::harness::Harness;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt;

/// Scenarios per CI run: a few minutes on two cores.
const DEFAULT_SCENARIOS: u64 = 200;
const DOMAIN: &str = "fuzz.example";
const COMPANY: &str = "fuzz";
const LEAVER: &str = "lee.leaver@fuzz.example";
/// Same display name as the leaver; a similar UPN; a live user with rights of their own.
const TWIN: &str = "l.leaver@fuzz.example";
const LOOKALIKE: &str = "lee.leaver2@fuzz.example";
const COLLEAGUE: &str = "pat.staff@fuzz.example";
/// A security group that is not mail-enabled (no Exchange recipient) and a mail-enabled one.
const SEC_GROUP: &str = "Ops Security";
const MAIL_SEC_GROUP: &str = "Finance Approvers";
const ORPHAN_SID: &str = "S-1-5-21-1111111111-2222222222-3333333333-7001";
const DEAD_NAME: &str = "Old Contractor";
/// What a cleanup is tried on: two dead values, and three that name someone.
const CLEANUP_VALUES: [&str; 5] = [ORPHAN_SID, DEAD_NAME, SEC_GROUP, MAIL_SEC_GROUP, TWIN];
const PERMISSION_TYPES: [&str; 5] = [
    "full_access",
    "send_as",
    "send_on_behalf",
    "calendar",
    "folder",
];
/// The well-known folders the leaver gets rights on (a run reads them live), and a deep one
/// only others hold rights on.
const WELL_KNOWN_FOLDERS: [&str; 3] = ["\\Inbox", "\\Tasks", "\\Contacts"];
const DEEP_FOLDER: &str = "\\Inbox\\Projects\\Deep";

/// splitmix64: a small, well-mixed generator, the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) < (p * 10_000.0) as u64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    /// A non-empty subset, in the given order.
    fn subset<T: Clone>(&mut self, items: &[T]) -> Vec<T> {
        loop {
            let chosen: Vec<T> = items.iter().filter(|_| self.chance(0.5)).cloned().collect();
            if !chosen.is_empty() {
                return chosen;
            }
        }
    }
}

/// One operation of a scenario.
#[derive(Debug, Clone)]
enum Op {
    Run {
        types: Option<Vec<&'static str>>,
        mailboxes: Vec<String>,
        keep_shared: bool,
        dry_run: bool,
        /// A contain run (`mode: contain`): its identity actions first.
        contain: bool,
    },
    /// Restore the newest run that removed something, twice (the second must add nothing).
    Restore {
        types: Option<Vec<&'static str>>,
        mailboxes: Vec<String>,
        dry_first: bool,
    },
    Cleanup {
        trustee: &'static str,
    },
    SweepAndReview,
    /// A run stopped after `after` removals (an admin may then remove one of the grants it
    /// had not got to), and resumed by another engine.
    InterruptedRun {
        types: Option<Vec<&'static str>>,
        mailboxes: Vec<String>,
        after: usize,
        admin_removes: bool,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A generated tenant and what the generator knows about it.
struct Tenant {
    fixture: Value,
    /// Every name an operation may give a mailbox by (UPN, primary address), lowercase, and
    /// the UPN the simulator keys it by.
    names: std::collections::BTreeMap<String, String>,
    shared: BTreeSet<String>,
    /// Groups whose members include the leaver.
    leaver_groups: BTreeSet<String>,
    /// The company's `[company.contain]`.
    contain: revoke365::model::ContainSettings,
}

/// One entry of the tenant's state, as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    mailbox: String,
    kind: &'static str,
    /// A folder entry's folder (`\\Inbox`); empty for the other kinds.
    folder: String,
    user: String,
    /// The calendar role, or the rights of a Full Access entry.
    rights: String,
    inherited: bool,
    deny: bool,
}

fn entries(s: &Snapshot) -> BTreeSet<Entry> {
    let mut out = BTreeSet::new();
    for m in &s.mailboxes {
        let mut add = |kind, user: &str, rights: String, inherited, deny| {
            out.insert(Entry {
                mailbox: m.upn.clone(),
                kind,
                folder: String::new(),
                user: user.to_ascii_lowercase(),
                rights,
                inherited,
                deny,
            });
        };
        for g in &m.full_access {
            if !g.user.to_ascii_uppercase().starts_with("NT AUTHORITY") {
                add(
                    "full_access",
                    &g.user,
                    g.access_rights.join(","),
                    g.inherited,
                    g.deny,
                );
            }
        }
        for g in &m.send_as {
            if !g.user.to_ascii_uppercase().starts_with("NT AUTHORITY") {
                add("send_as", &g.user, String::new(), g.inherited, g.deny);
            }
        }
        for u in &m.send_on_behalf {
            add("send_on_behalf", u, String::new(), false, false);
        }
        for c in &m.calendar {
            add("calendar", &c.user, c.access_rights.clone(), false, false);
        }
        for (folder, grants) in &m.folders {
            for g in grants {
                out.insert(Entry {
                    mailbox: m.upn.clone(),
                    kind: "folder",
                    folder: folder.clone(),
                    user: g.user.to_ascii_lowercase(),
                    rights: [g.access_rights.clone(), g.sharing_permission_flags.clone()]
                        .concat()
                        .join(","),
                    inherited: false,
                    deny: false,
                });
            }
        }
    }
    out
}

/// Folder permissions of one mailbox, drawn from their own generator (the rest of each seed's
/// scenario stays what it was): the leaver's on well-known folders, the twin's (same display
/// name) and a colleague's anywhere, and a group's the leaver is not in.
fn folder_entries(rng: &mut Rng, leaver_groups: &BTreeSet<String>) -> Vec<Value> {
    let mut by_path: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    if rng.chance(0.45) {
        let rights = *rng.pick(&["Reviewer", "Editor", "Author"]);
        by_path
            .entry(*rng.pick(&WELL_KNOWN_FOLDERS))
            .or_default()
            .push(json!({"user": LEAVER, "access_rights": rights}));
    }
    let anywhere = [
        WELL_KNOWN_FOLDERS[0],
        WELL_KNOWN_FOLDERS[1],
        WELL_KNOWN_FOLDERS[2],
        DEEP_FOLDER,
    ];
    for (who, p) in [(TWIN, 0.35), (COLLEAGUE, 0.2), (MAIL_SEC_GROUP, 0.2)] {
        if who == MAIL_SEC_GROUP && leaver_groups.contains(&who.to_ascii_lowercase()) {
            continue;
        }
        if rng.chance(p) {
            by_path
                .entry(*rng.pick(&anywhere))
                .or_default()
                .push(json!({"user": who, "access_rights": "Reviewer"}));
        }
    }
    by_path
        .into_iter()
        .map(|(path, permissions)| json!({"path": path, "permissions": permissions}))
        .collect()
}

fn generate_tenant(rng: &mut Rng) -> Tenant {
    let mut users = vec![
        json!({"upn": LEAVER, "display_name": "Lee Leaver",
               "proxy_addresses": [format!("SMTP:{LEAVER}"), format!("smtp:lee@{DOMAIN}")]}),
        json!({"upn": TWIN, "display_name": "Lee Leaver"}),
        json!({"upn": LOOKALIKE, "display_name": "Lee Leaver2"}),
        json!({"upn": COLLEAGUE, "display_name": "Pat Staff"}),
        json!({"upn": format!("automation@{DOMAIN}"), "display_name": "Revoke365 Automation"}),
    ];
    let mut leaver_groups = BTreeSet::new();
    let mut groups = Vec::new();
    for (name, kind) in [
        (SEC_GROUP, "SecurityGroup"),
        (MAIL_SEC_GROUP, "MailUniversalSecurityGroup"),
    ] {
        let mut members = vec![COLLEAGUE.to_string()];
        if rng.chance(0.5) {
            members.push(LEAVER.into());
            leaver_groups.insert(name.to_ascii_lowercase());
        }
        groups.push(json!({"name": name, "type": kind, "members": members}));
    }
    let count = 3 + rng.below(5);
    let mut mailboxes = Vec::new();
    let mut shared = BTreeSet::new();
    let mut fixture_mailboxes = Vec::new();
    for person in [LEAVER, TWIN, LOOKALIKE, COLLEAGUE] {
        fixture_mailboxes.push(json!({"upn": person, "type": "UserMailbox"}));
    }
    let mut names = std::collections::BTreeMap::new();
    for i in 0..count {
        let is_shared = rng.chance(0.3);
        let mut upn = format!("{}{i}@{DOMAIN}", if is_shared { "team" } else { "boss" });
        if is_shared {
            shared.insert(upn.clone());
        } else if rng.chance(0.4) {
            // A primary address that is not the UPN: runs and restores may name either.
            let mail = upn.clone();
            upn = format!("b{i}.id@{DOMAIN}");
            users.push(json!({"upn": upn, "mail": mail, "display_name": format!("Boss {i}")}));
            names.insert(mail, upn.clone());
        } else {
            users.push(json!({"upn": upn, "display_name": format!("Boss {i}")}));
        }
        names.insert(upn.clone(), upn.clone());
        let mut full_access = Vec::new();
        let leaver_allowed = rng.chance(0.45);
        if leaver_allowed {
            let shown = *rng.pick(&["upn", "upn", "sid", "domain_sam"]);
            full_access.push(json!({"user": LEAVER, "shown_as": shown}));
        } else if rng.chance(0.15) {
            full_access.push(json!({"user": LEAVER, "deny": true}));
        }
        if rng.chance(0.15) {
            full_access.push(json!({"user": LEAVER, "inherited": true}));
        }
        for (who, p) in [
            (TWIN, 0.25),
            (LOOKALIKE, 0.25),
            (COLLEAGUE, 0.2),
            (SEC_GROUP, 0.25),
            (MAIL_SEC_GROUP, 0.15),
            (ORPHAN_SID, 0.12),
            (DEAD_NAME, 0.12),
        ] {
            if rng.chance(p) {
                full_access.push(json!({"user": who}));
            }
        }
        let mut send_as = Vec::new();
        if rng.chance(0.35) {
            send_as.push(json!(LEAVER));
        } else if rng.chance(0.1) {
            send_as.push(json!({"user": LEAVER, "deny": true}));
        }
        for (who, p) in [(TWIN, 0.2), (MAIL_SEC_GROUP, 0.2), (COLLEAGUE, 0.15)] {
            if rng.chance(p) {
                send_as.push(json!(who));
            }
        }
        let send_on_behalf: Vec<&str> = [(LEAVER, 0.35), (LOOKALIKE, 0.25), (COLLEAGUE, 0.2)]
            .into_iter()
            .filter_map(|(who, p)| rng.chance(p).then_some(who))
            .collect();
        let mut calendar = Vec::new();
        if rng.chance(0.4) {
            let role = *rng.pick(&["Editor", "Reviewer", "LimitedDetails", "AvailabilityOnly"]);
            let delegate = role == "Editor" && rng.chance(0.5);
            calendar.push(json!({"user": LEAVER, "access_rights": role, "delegate": delegate}));
        }
        if rng.chance(0.25) {
            calendar.push(json!({"user": TWIN, "access_rights": "Reviewer"}));
        }
        fixture_mailboxes.push(json!({
            "upn": upn,
            "display_name": format!("Mailbox {i}"),
            "type": if is_shared { "SharedMailbox" } else { "UserMailbox" },
            "full_access": full_access,
            "send_as": send_as,
            "send_on_behalf": send_on_behalf,
            "calendar": calendar,
        }));
        mailboxes.push(upn);
    }
    let mut faults = Vec::new();
    if rng.chance(0.35) {
        for _ in 0..1 + rng.below(2) {
            let (endpoint, answers): (&str, &[&str]) = *rng.pick(&[
                (
                    "exo Get-MailboxPermission",
                    &["502", "503", "504", "concurrent_text"][..],
                ),
                (
                    "exo Get-RecipientPermission",
                    &["502", "503", "concurrent_text"][..],
                ),
                ("graph GET calendarPermissions", &["502", "503", "504"][..]),
                (
                    "exo Remove-MailboxPermission",
                    &["503", "503_after_write", "504_after_write"][..],
                ),
                (
                    "exo Remove-RecipientPermission",
                    &["503", "503_after_write"][..],
                ),
                (
                    "graph DELETE calendarPermissions",
                    &["503", "504_after_write"][..],
                ),
                ("exo Set-Mailbox", &["503", "503_after_write"][..]),
            ]);
            let mut fault = json!({"endpoint": endpoint, "answer": rng.pick(answers), "times": 1});
            if rng.chance(0.5) {
                fault["identity"] = json!(rng.pick(&mailboxes));
            }
            faults.push(fault);
        }
    }
    // A mailbox whose permissions cannot be read at all, one that refuses every change: drawn
    // apart, so that the rest of each seed's scenario is what it was before they were added.
    let mut apart = Rng(rng.0 ^ 0x5EED_0F0F_5EED_0F0F);
    let mut one_of = |p: f64| -> Vec<String> {
        match apart.chance(p) {
            true => vec![apart.pick(&mailboxes).clone()],
            false => Vec::new(),
        }
    };
    let unreadable = one_of(0.08);
    let failing = one_of(0.08);
    let mut folders_rng = Rng(rng.0 ^ 0xF01D_E125_F01D_E125);
    for m in fixture_mailboxes.iter_mut() {
        let upn = m["upn"].as_str().unwrap_or_default().to_string();
        if mailboxes.contains(&upn) {
            m["folders"] = json!(folder_entries(&mut folders_rng, &leaver_groups));
        }
    }
    if folders_rng.chance(0.3) {
        let (endpoint, answer) = *folders_rng.pick(&[
            ("exo Get-MailboxFolderPermission", "503"),
            ("exo Get-MailboxFolderStatistics", "502"),
            ("exo Remove-MailboxFolderPermission", "503_after_write"),
            ("exo Add-MailboxFolderPermission", "503"),
        ]);
        faults.push(json!({"endpoint": endpoint, "answer": answer, "times": 1}));
    }
    // App consents of the leaver and of the people like him, and the company's contain
    // policy: drawn apart too.
    let mut ids = Rng(rng.0 ^ 0x1DE7_7171_C0DE_5EED);
    let mut consents = Vec::new();
    for who in [LEAVER, TWIN, LOOKALIKE, COLLEAGUE] {
        if ids.chance(0.6) {
            let scope = *ids.pick(&[
                "Mail.Read offline_access",
                "openid Calendars.ReadWrite",
                "EWS.AccessAsUser.All",
            ]);
            let resource = if scope.starts_with("EWS") {
                "Office 365 Exchange Online"
            } else {
                "Microsoft Graph"
            };
            consents.push(
                json!({"user": who, "app": "Mail Sync", "scope": scope, "resource": resource}),
            );
        }
        if ids.chance(0.5) {
            consents
                .push(json!({"user": who, "app": "Polls", "scope": "openid profile User.Read"}));
        }
    }
    if ids.chance(0.3) {
        consents.push(json!({"app": "Portal", "consent_type": "AllPrincipals", "scope": "User.Read Mail.Read"}));
    }
    let contain = revoke365::model::ContainSettings {
        revoke_sessions: ids.chance(0.8),
        disable_sign_in: ids.chance(0.4),
        remove_mail_consents: ids.chance(0.8),
        confirm_compromised: ids.chance(0.3),
    };
    if ids.chance(0.2) {
        users[0]["on_premises_sync_enabled"] = json!(true);
    }
    let fixture = json!({
        "tenant_id": "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
        "organization": {
            "company_id": COMPANY,
            "company_name": "Fuzz Corp",
            "psa_company": "FuzzCorp",
            "m365_permission_ticket_board": "Service Desk",
            "m365_permission_removal_scope": PERMISSION_TYPES,
            "m365_permission_notification_recipients": ["secops@msp.example"],
            "notification_sender": format!("automation@{DOMAIN}"),
            "contain": contain,
        },
        "users": users,
        "consents": consents,
        "groups": groups,
        "mailboxes": fixture_mailboxes,
        "sim": {
            "page_size": 2 + rng.below(4),
            // Calls take a moment, so that a stop lands between removals.
            "latency_ms": 2 + rng.below(10),
            "seed": rng.next() % 1000,
            "retry_after_secs": 0,
            "faults": faults,
            "unreadable_mailboxes": unreadable,
            "fail_mailboxes": failing,
        }
    });
    Tenant {
        fixture,
        names,
        shared,
        leaver_groups,
        contain,
    }
}

fn generate_ops(rng: &mut Rng, tenant: &Tenant) -> Vec<Op> {
    let count = 1 + rng.below(4);
    let mut ops = Vec::new();
    for _ in 0..count {
        let types = |rng: &mut Rng| rng.chance(0.4).then(|| rng.subset(&PERMISSION_TYPES));
        let mailboxes = |rng: &mut Rng| -> Vec<String> {
            if rng.chance(0.7) {
                return Vec::new();
            }
            let names: Vec<String> = tenant.names.keys().cloned().collect();
            let mut chosen = rng.subset(&names);
            chosen.truncate(2);
            chosen
        };
        let op = match rng.below(12) {
            10 | 11 => Op::InterruptedRun {
                types: types(rng),
                mailboxes: mailboxes(rng),
                after: 1 + rng.below(3),
                admin_removes: rng.chance(0.5),
            },
            0..=4 => {
                let mut named = mailboxes(rng);
                if rng.chance(0.05) {
                    named.push(format!("nobody{}@{DOMAIN}", rng.below(9)));
                }
                Op::Run {
                    types: types(rng),
                    mailboxes: named,
                    keep_shared: rng.chance(0.2),
                    dry_run: rng.chance(0.2),
                    // Drawn apart, so that the rest of the scenario is what it was.
                    contain: Rng(rng.0 ^ 0xC0A7_A1E5).chance(0.35),
                }
            }
            5..=7 => Op::Restore {
                types: types(rng),
                mailboxes: mailboxes(rng),
                dry_first: rng.chance(0.3),
            },
            8 => Op::Cleanup {
                trustee: CLEANUP_VALUES[rng.below(CLEANUP_VALUES.len())],
            },
            _ => Op::SweepAndReview,
        };
        ops.push(op);
    }
    ops
}

/// What the scenario remembers between operations: the newest run that removed something and
/// what left the tenant in it.
#[derive(Default)]
struct Memory {
    last_removal: Option<(revoke365::model::RunId, BTreeSet<Entry>)>,
    stats: Stats,
}

/// What the scenarios did, so that a run of the check shows it exercised something.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    live_runs: usize,
    interrupted: usize,
    failed_runs: usize,
    refused_runs: usize,
    removed: usize,
    restores: usize,
    restored: usize,
    cleanups: usize,
    reviews: usize,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.live_runs += o.live_runs;
        self.interrupted += o.interrupted;
        self.failed_runs += o.failed_runs;
        self.refused_runs += o.refused_runs;
        self.removed += o.removed;
        self.restores += o.restores;
        self.restored += o.restored;
        self.cleanups += o.cleanups;
        self.reviews += o.reviews;
    }
}

fn is_leaver(user: &str) -> bool {
    user.eq_ignore_ascii_case(LEAVER)
}

/// Whether a run with this scope may remove `e`: the leaver's own, direct, allowing entry, of a
/// type and on a mailbox in scope, not on a shared mailbox that is kept.
fn in_run_scope(
    e: &Entry,
    tenant: &Tenant,
    types: &[&str],
    mailboxes: &[String],
    keep_shared: bool,
) -> bool {
    is_leaver(&e.user)
        && !e.inherited
        && !e.deny
        && types.contains(&e.kind)
        && tenant.named(mailboxes, &e.mailbox)
        && !(keep_shared && tenant.shared.contains(&e.mailbox))
}

impl Tenant {
    /// Whether `mailbox` (a UPN) is among `named` (any of its names); no names is every one.
    fn named(&self, named: &[String], mailbox: &str) -> bool {
        named.is_empty()
            || named.iter().any(|n| {
                self.names
                    .get(&n.to_ascii_lowercase())
                    .is_some_and(|upn| upn.eq_ignore_ascii_case(mailbox))
            })
    }
}

/// Whether the leaver can still reach some mailbox: an allowing entry of theirs, direct or
/// inherited, or one of a group they belong to.
fn leaver_has_access(after: &BTreeSet<Entry>, tenant: &Tenant) -> bool {
    after.iter().any(|e| {
        !e.deny
            && e.mailbox != LEAVER
            && (is_leaver(&e.user) || tenant.leaver_groups.contains(&e.user))
    })
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

async fn apply(h: &Harness, tenant: &Tenant, memory: &mut Memory, op: &Op) -> Result<(), String> {
    let before_state = h.snapshot();
    let before = entries(&before_state);
    match op {
        Op::Run {
            types,
            mailboxes,
            keep_shared,
            dry_run,
            contain,
        } => {
            let mut body = run_body(types, mailboxes, *keep_shared, *dry_run);
            if *contain {
                body["mode"] = json!("contain");
            }
            let run = h.run(body).await;
            let after_state = h.snapshot();
            let after = entries(&after_state);
            let removed: BTreeSet<Entry> = before.difference(&after).cloned().collect();
            let added: BTreeSet<&Entry> = after.difference(&before).collect();
            check(added.is_empty(), || {
                format!("a run added grants: {added:?}")
            })?;
            let types: Vec<&str> = types.clone().unwrap_or(PERMISSION_TYPES.to_vec());
            if let Some(wrong) = removed
                .iter()
                .find(|e| !in_run_scope(e, tenant, &types, mailboxes, *keep_shared))
            {
                return Err(format!(
                    "I1: removed outside the request's scope: {wrong:?}"
                ));
            }
            let Some(report) = run.result.clone() else {
                memory.stats.refused_runs += 1;
                // Refused before anything was done: nothing may have changed.
                return check(removed.is_empty(), || {
                    format!("a refused run removed {removed:?} ({:?})", run.failure)
                });
            };
            if *dry_run {
                check(removed.is_empty(), || {
                    format!("I5: a dry run removed {removed:?}")
                })?;
                check(
                    after_state.tickets == before_state.tickets
                        && after_state.sent_mail.len() == before_state.sent_mail.len(),
                    || "I5: a dry run without notify told someone".into(),
                )?;
                return check(
                    report.removal_summary.total_permissions_removed == 0,
                    || "a dry run counts removals".into(),
                );
            }
            check_report(
                &report,
                tenant,
                &after,
                &removed,
                &types,
                mailboxes,
                *keep_shared,
            )?;
            check_history(h, &run.run_id, &report).await?;
            memory.ran(&run.run_id, &report, removed);
            Ok(())
        }
        Op::InterruptedRun {
            types,
            mailboxes,
            after,
            admin_removes,
        } => {
            let body = run_body(types, mailboxes, false, false);
            let run = stopped_after(h, &body, *after).await;
            let types: Vec<&str> = types.clone().unwrap_or(PERMISSION_TYPES.to_vec());
            let mut admin_removed = BTreeSet::new();
            if run.status == RunStatus::Interrupted {
                memory.stats.interrupted += 1;
                let partial = revoke365::engine::partial_report(h.store.as_ref(), &run)
                    .await
                    .map_err(|e| e.to_string())?;
                let now = entries(&h.snapshot());
                let so_far: BTreeSet<&Entry> = before.difference(&now).collect();
                let left = now
                    .iter()
                    .any(|e| in_run_scope(e, tenant, &types, mailboxes, false));
                check(!partial.verification.verified && !partial.success, || {
                    format!(
                        "I4: a partial result claims verification: {:?}",
                        partial.verification
                    )
                })?;
                check(!left || partial.residual_access, || {
                    "I4: grants are left but the partial result says no residual access".into()
                })?;
                let counted = partial.removal_summary.total_permissions_removed as usize;
                check(counted <= so_far.len(), || {
                    format!(
                        "I4: the partial result counts {counted} removed, the tenant lost {}",
                        so_far.len()
                    )
                })?;
                if *admin_removes {
                    admin_removed =
                        admin_remove_one(h, tenant, &run, &now, &types, mailboxes).await;
                }
                let engine = h.fresh_engine();
                let resumed = engine
                    .resume(&run.run_id)
                    .await
                    .map_err(|e| e.to_string())?;
                return finished_run(
                    h,
                    tenant,
                    memory,
                    &before,
                    &resumed,
                    &types,
                    mailboxes,
                    &admin_removed,
                )
                .await;
            }
            finished_run(
                h,
                tenant,
                memory,
                &before,
                &run,
                &types,
                mailboxes,
                &admin_removed,
            )
            .await
        }
        Op::Restore {
            types,
            mailboxes,
            dry_first,
        } => {
            let Some((source, removed)) = memory.last_removal.clone() else {
                return Ok(());
            };
            let mut body = json!({"target_mailboxes": mailboxes});
            if let Some(t) = types {
                body["permission_types"] = json!(t);
            }
            if *dry_first {
                let mut dry = body.clone();
                dry["dry_run"] = json!(true);
                h.restore(&source, dry).await;
                check(entries(&h.snapshot()) == before, || {
                    "I3: a dry-run restore changed the tenant".into()
                })?;
            }
            let types: Vec<&str> = types.clone().unwrap_or(PERMISSION_TYPES.to_vec());
            let wanted: BTreeSet<Entry> = removed
                .iter()
                .filter(|e| types.contains(&e.kind) && tenant.named(mailboxes, &e.mailbox))
                .filter(|e| !before.contains(e))
                .cloned()
                .collect();
            tampered_restore_grants_nothing(h, &source, &body, &before).await?;
            let first = h.restore(&source, body.clone()).await;
            let after = entries(&h.snapshot());
            let added: BTreeSet<Entry> = after.difference(&before).cloned().collect();
            let taken: BTreeSet<&Entry> = before.difference(&after).collect();
            check(taken.is_empty(), || {
                format!("I3: a restore removed {taken:?}")
            })?;
            if let Some(wrong) = added.iter().find(|e| !is_leaver(&e.user)) {
                return Err(format!("I3: a restore granted someone else: {wrong:?}"));
            }
            check(added.is_subset(&wanted), || {
                format!(
                    "I3: a restore added what it was not asked for: {:?}",
                    added.difference(&wanted).collect::<Vec<_>>()
                )
            })?;
            let success = first.restore_result.as_ref().is_some_and(|r| r.success);
            check(!success || added == wanted, || {
                format!(
                    "I3: a successful restore left out {:?} (status {:?})",
                    wanted.difference(&added).collect::<Vec<_>>(),
                    first.status
                )
            })?;
            h.restore(&source, body).await;
            let again = entries(&h.snapshot());
            check(again == after, || {
                format!(
                    "I3: a second restore changed the tenant: +{:?} -{:?}",
                    again.difference(&after).collect::<Vec<_>>(),
                    after.difference(&again).collect::<Vec<_>>()
                )
            })?;
            memory.stats.restores += 1;
            memory.stats.restored += added.len();
            // What came back may be removed again by a later run: it is that run's then.
            memory.last_removal = None;
            Ok(())
        }
        Op::Cleanup { trustee } => {
            let run = h
                .run(json!({"mode": "cleanup", "trustee": trustee, "company_id": COMPANY}))
                .await;
            let after = entries(&h.snapshot());
            let removed: BTreeSet<&Entry> = before.difference(&after).collect();
            memory.stats.cleanups += 1;
            let dead = [ORPHAN_SID, DEAD_NAME].contains(trustee);
            if !dead {
                check(removed.is_empty(), || {
                    format!("I1: a cleanup of a live value ({trustee}) removed {removed:?}")
                })?;
                return check(
                    run.failure
                        .as_ref()
                        .is_some_and(|f| f.code.as_str() == "trustee_exists"),
                    || format!("a cleanup of {trustee} was not refused: {:?}", run.status),
                );
            }
            if let Some(wrong) = removed
                .iter()
                .find(|e| !e.user.eq_ignore_ascii_case(trustee) || e.inherited || e.deny)
            {
                return Err(format!("I1: a cleanup of {trustee} removed {wrong:?}"));
            }
            if let Some(report) = &run.result {
                check(
                    report.removal_summary.total_permissions_removed as usize == removed.len(),
                    || {
                        format!(
                            "I2: cleanup counts {} removed, the tenant lost {}: {}",
                            report.removal_summary.total_permissions_removed,
                            removed.len(),
                            serde_json::to_string(&report.permissions_removed).unwrap_or_default()
                        )
                    },
                )?;
            }
            Ok(())
        }
        Op::SweepAndReview => {
            memory.stats.reviews += 1;
            let review = h.swept_review(None).await;
            for t in &review.trustees {
                let dead = [ORPHAN_SID, DEAD_NAME]
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(&t.trustee));
                let says_dead = matches!(
                    t.reason,
                    revoke365::index::ReviewReason::OrphanedSid
                        | revoke365::index::ReviewReason::Unresolved
                );
                check(dead || !says_dead, || {
                    format!(
                        "the review lists a live trustee as dead: {} ({:?})",
                        t.trustee, t.reason
                    )
                })?;
            }
            check(entries(&h.snapshot()) == before, || {
                "a sweep changed the tenant".into()
            })
        }
    }
}

/// I3 for a trail someone edited: a `before` record of the leaver's made to name the
/// lookalike, then a restore — refused, and nothing granted to anyone. The trail is put back
/// as it was afterwards.
async fn tampered_restore_grants_nothing(
    h: &Harness,
    source: &revoke365::model::RunId,
    body: &Value,
    before: &BTreeSet<Entry>,
) -> Result<(), String> {
    let path = h.store.audit_path(source);
    let original = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let mut edited = false;
    let lines: Vec<String> = original
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap_or_default();
            if !edited && record["phase"] == "before" && record["grant"]["trustee"].is_string() {
                record["grant"]["trustee"] = json!(TWIN);
                record["grant"]["trustee_as_shown"] = Value::Null;
                edited = true;
                return record.to_string();
            }
            line.to_string()
        })
        .collect();
    if !edited {
        return Ok(());
    }
    std::fs::write(&path, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    let refused = h.restore(source, body.clone()).await;
    std::fs::write(&path, &original).map_err(|e| e.to_string())?;
    check(
        refused
            .failure
            .as_ref()
            .is_some_and(|f| f.code.as_str() == "audit_untrusted"),
        || {
            format!(
                "I3: a restore from an edited trail was not refused: {:?}",
                refused.status
            )
        },
    )?;
    let after = entries(&h.snapshot());
    check(&after == before, || {
        format!(
            "I3: a restore from an edited trail changed the tenant: +{:?}",
            after.difference(before).collect::<Vec<_>>()
        )
    })
}

fn run_body(
    types: &Option<Vec<&'static str>>,
    mailboxes: &[String],
    keep_shared: bool,
    dry_run: bool,
) -> Value {
    let mut body = json!({
        "user_email": LEAVER, "company_id": COMPANY,
        "target_mailboxes": mailboxes, "remove_from_shared": !keep_shared,
        "dry_run": dry_run,
    });
    if let Some(t) = types {
        body["permission_types"] = json!(t);
    }
    body
}

impl Memory {
    /// A live run ended with `report`, and the tenant lost `removed` to it.
    fn ran(&mut self, run_id: &revoke365::model::RunId, report: &Report, removed: BTreeSet<Entry>) {
        self.stats.live_runs += 1;
        self.stats.failed_runs += usize::from(!report.success);
        self.stats.removed += removed.len();
        if !removed.is_empty() {
            self.last_removal = Some((run_id.clone(), removed));
        }
    }
}

/// Runs `body` on an engine of its own and stops it once `removals` more removals are in the
/// audit (or lets it end, if it has fewer); the run as it ended.
async fn stopped_after(h: &Harness, body: &Value, removals: usize) -> revoke365::model::Run {
    // One call at a time (`--concurrency 1`): the stop finds grants the run has not tried.
    let engine = h.fresh_engine_with(fast_http(1));
    let stop = engine.stop.clone();
    let baseline = h.audited_removals();
    let watcher = async {
        while h.audited_removals() < baseline + removals {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        stop.stop("interrupted by the invariant check");
    };
    let run = engine.run(body, None);
    tokio::pin!(run);
    let run = tokio::select! {
        run = &mut run => run,
        () = watcher => run.await,
    };
    run.expect("request accepted")
}

/// An admin removes one of the leaver's in-scope Full Access or Send As grants by hand, as
/// another tool or person would while the run is stopped — one whose removal call the run never
/// sent (no attempt, or each attempt refused unsent at the stop): gone now, but never this
/// run's doing. (A grant whose call may have gone out is the run's if found gone: the run
/// cannot tell its own lost answer from someone else's removal.) What was removed.
async fn admin_remove_one(
    h: &Harness,
    tenant: &Tenant,
    run: &revoke365::model::Run,
    now: &BTreeSet<Entry>,
    types: &[&str],
    mailboxes: &[String],
) -> BTreeSet<Entry> {
    use revoke365::model::AuditPhase;
    use revoke365::ports::{AuditTrail, RunItems};
    let records = h.store.audit_records(&run.run_id).await.expect("audit");
    let phases = |id, phase| {
        records
            .iter()
            .filter(|r| r.item_id == Some(id) && r.phase == phase)
            .count()
    };
    let items = h.store.items(&run.run_id).await.expect("items");
    let unsent: BTreeSet<(String, String)> = items
        .iter()
        .filter(|i| phases(i.id, AuditPhase::Before) == phases(i.id, AuditPhase::NotSent))
        .filter_map(|i| {
            let upn = tenant.names.get(&i.grant.mailbox.to_ascii_lowercase())?;
            let kind = serde_json::to_value(i.grant.right)
                .ok()?
                .as_str()?
                .to_string();
            Some((upn.clone(), kind))
        })
        .collect();
    let Some(e) = now.iter().find(|e| {
        in_run_scope(e, tenant, types, mailboxes, false)
            && ["full_access", "send_as"].contains(&e.kind)
            && unsent.contains(&(e.mailbox.clone(), e.kind.to_string()))
    }) else {
        return BTreeSet::new();
    };
    let conns = h.connector.connect(&h.org).await.expect("connect");
    let exchange = conns.tenant().exchange;
    let done = match e.kind {
        "full_access" => exchange.remove_full_access(&e.mailbox, LEAVER).await,
        _ => exchange.remove_send_as(&e.mailbox, None, LEAVER).await,
    };
    // A mailbox that refuses every change refuses the admin too: then nothing was removed.
    match done {
        Ok(_) => BTreeSet::from([e.clone()]),
        Err(_) => BTreeSet::new(),
    }
}

/// A live run that ended (at once, or after a resume): its report against what the tenant lost
/// since `before`, less what an admin removed meanwhile (never the run's).
#[allow(clippy::too_many_arguments)]
async fn finished_run(
    h: &Harness,
    tenant: &Tenant,
    memory: &mut Memory,
    before: &BTreeSet<Entry>,
    run: &revoke365::model::Run,
    types: &[&str],
    mailboxes: &[String],
    admin_removed: &BTreeSet<Entry>,
) -> Result<(), String> {
    let after = entries(&h.snapshot());
    let removed: BTreeSet<Entry> = before
        .difference(&after)
        .filter(|e| !admin_removed.contains(e))
        .cloned()
        .collect();
    if let Some(wrong) = removed
        .iter()
        .find(|e| !in_run_scope(e, tenant, types, mailboxes, false))
    {
        return Err(format!(
            "I1: removed outside the request's scope: {wrong:?}"
        ));
    }
    let Some(report) = run.result.clone() else {
        return Err(format!(
            "I4: the run ended {:?} without a result",
            run.status
        ));
    };
    check_report(&report, tenant, &after, &removed, types, mailboxes, false)?;
    check_history(h, &run.run_id, &report).await?;
    memory.ran(&run.run_id, &report, removed);
    Ok(())
}

/// I4: history counts what the result counts.
async fn check_history(
    h: &Harness,
    run_id: &revoke365::model::RunId,
    report: &Report,
) -> Result<(), String> {
    use revoke365::ports::RunRecords;
    let page = h
        .store
        .list_runs(&Default::default(), 100, None)
        .await
        .map_err(|e| e.to_string())?;
    let Some(line) = page.runs.iter().find(|r| &r.run_id == run_id) else {
        return Err(format!("I4: run {run_id} is not in the history"));
    };
    check(
        line.counts.done == report.removal_summary.total_permissions_removed,
        || {
            format!(
                "I4: history counts {} done, the result {}",
                line.counts.done, report.removal_summary.total_permissions_removed
            )
        },
    )
}

/// I2: a finished live run's report against what the tenant lost and still holds.
fn check_report(
    report: &Report,
    tenant: &Tenant,
    after: &BTreeSet<Entry>,
    removed: &BTreeSet<Entry>,
    types: &[&str],
    mailboxes: &[String],
    keep_shared: bool,
) -> Result<(), String> {
    let total = report.removal_summary.total_permissions_removed as usize;
    check(total == removed.len(), || {
        format!(
            "I2: the report counts {total} removed, the tenant lost {}: {removed:?}",
            removed.len()
        )
    })?;
    let left: Vec<&Entry> = after
        .iter()
        .filter(|e| in_run_scope(e, tenant, types, mailboxes, keep_shared))
        .collect();
    check(!report.success || left.is_empty(), || {
        format!("I2: success while in scope is left: {left:?}")
    })?;
    let v = &report.verification;
    let counted = (v.remaining_full_access
        + v.remaining_send_as
        + v.remaining_send_on_behalf
        + v.remaining_calendar_delegates
        + v.remaining_folder_permissions
        + v.remaining_shared_mailboxes) as usize;
    check(counted == v.remaining.len(), || {
        format!(
            "I2: remaining_* count {counted}, `remaining` lists {}: {v:?}",
            v.remaining.len()
        )
    })?;
    check(counted <= left.len(), || {
        format!(
            "I2: {counted} remaining counted, {} left in scope: {left:?}",
            left.len()
        )
    })?;
    check(counted == left.len() || !report.success, || {
        format!(
            "I2: {} left in scope but {counted} counted, and success",
            left.len()
        )
    })?;
    // "Cleared" is a claim about the tenant, whatever else went wrong in the run.
    check(!v.all_permissions_cleared || left.is_empty(), || {
        format!(
            "I2: all_permissions_cleared {} with {left:?} left",
            v.all_permissions_cleared
        )
    })?;
    check(
        !leaver_has_access(after, tenant) || report.residual_access,
        || "I2: access is left but residual_access is false".into(),
    )?;
    check(report.status != RunStatus::Interrupted, || {
        "a run ended interrupted".into()
    })
}

/// I6: what the operation did to sign-in state and consents. Only a live contain run acts, only
/// on the leaver, only as the company's policy says, and of consents only the leaver's own
/// that reach mail.
fn check_identity(
    tenant: &Tenant,
    op: &Op,
    before: &revoke365_sim::identity::IdentitySnapshot,
    after: &revoke365_sim::identity::IdentitySnapshot,
) -> Result<(), String> {
    let live_contain = matches!(
        op,
        Op::Run {
            contain: true,
            dry_run: false,
            ..
        }
    );
    let upns: BTreeSet<&str> = before
        .users
        .iter()
        .chain(&after.users)
        .map(|u| u.upn.as_str())
        .collect();
    for upn in upns.iter().filter(|u| !is_leaver(u)) {
        check(before.user(upn) == after.user(upn), || {
            format!(
                "I6: the sign-in state of {upn} changed: {:?} -> {:?}",
                before.user(upn),
                after.user(upn)
            )
        })?;
    }
    let others = |s: &revoke365_sim::identity::IdentitySnapshot| -> BTreeSet<String> {
        s.consents
            .iter()
            .filter(|c| !c.user.as_deref().is_some_and(is_leaver))
            .map(|c| format!("{c:?}"))
            .collect()
    };
    check(others(before) == others(after), || {
        "I6: a consent not the leaver's own changed".into()
    })?;
    let mine = |s: &revoke365_sim::identity::IdentitySnapshot| -> Vec<revoke365_sim::identity::ConsentSnapshot> {
        s.consents_of(LEAVER).into_iter().cloned().collect()
    };
    let (had, has) = (mine(before), mine(after));
    let restore = matches!(op, Op::Restore { .. });
    let same = |a: &revoke365_sim::identity::ConsentSnapshot,
                b: &revoke365_sim::identity::ConsentSnapshot| {
        (&a.client_id, &a.resource_id, &a.scope) == (&b.client_id, &b.resource_id, &b.scope)
    };
    // A restore re-creates only the leaver's own mail consents the tenant started with.
    let started_with = |c: &revoke365_sim::identity::ConsentSnapshot| {
        tenant.fixture["consents"].as_array().is_some_and(|all| {
            all.iter().any(|f| {
                f["user"].as_str().is_some_and(is_leaver)
                    && f["app"] == c.app.as_str()
                    && f["scope"] == c.scope.as_str()
            })
        })
    };
    for added in has.iter().filter(|c| !had.iter().any(|h| same(h, c))) {
        let mail = !revoke365::model::mail_scopes(&added.scope).is_empty();
        check(
            restore && mail && started_with(added) && added.consent_type == "Principal",
            || format!("I6: a consent of the leaver appeared: {added:?}"),
        )?;
    }
    for gone in had.iter().filter(|c| !has.iter().any(|h| same(h, c))) {
        let mail = !revoke365::model::mail_scopes(&gone.scope).is_empty();
        check(
            live_contain && tenant.contain.remove_mail_consents && mail,
            || {
                format!(
                    "I6: the leaver's consent {gone:?} was removed (live contain: {live_contain})"
                )
            },
        )?;
    }
    let (b, a) = (before.user(LEAVER), after.user(LEAVER));
    let field = |u: Option<&revoke365_sim::identity::IdentityUserSnapshot>| {
        u.map(|u| {
            (
                u.sessions_revoked,
                u.account_enabled,
                u.confirmed_compromised_at.is_some(),
            )
        })
    };
    if field(b) != field(a) {
        let (b, a) = (
            field(b).unwrap_or((0, true, false)),
            field(a).unwrap_or((0, true, false)),
        );
        let p = tenant.contain;
        if restore {
            // A restore only enables again what a contain run disabled.
            return check(
                a.0 == b.0 && a.2 == b.2 && a.1 && !b.1 && p.disable_sign_in,
                || format!("I6: a restore changed the leaver's sign-in state: {b:?} -> {a:?}"),
            );
        }
        check(live_contain, || {
            format!(
                "I6: the leaver's sign-in state changed outside a live contain run: {b:?} -> {a:?}"
            )
        })?;
        check(a.0 == b.0 || p.revoke_sessions, || {
            "I6: sessions revoked against the policy".into()
        })?;
        check(a.1 == b.1 || (p.disable_sign_in && !a.1), || {
            "I6: accountEnabled changed against the policy".into()
        })?;
        check(a.2 == b.2 || p.confirm_compromised, || {
            "I6: confirmed compromised against the policy".into()
        })?;
    }
    Ok(())
}

async fn run_scenario(tenant: &Tenant, ops: &[Op]) -> Result<Stats, String> {
    let h = Harness::start(tenant.fixture.clone(), fast_http(8)).await;
    let mut memory = Memory::default();
    for (i, op) in ops.iter().enumerate() {
        let before = h.snapshot().identity;
        apply(&h, tenant, &mut memory, op)
            .await
            .map_err(|e| format!("operation {i} ({op}): {e}"))?;
        check_identity(tenant, op, &before, &h.snapshot().identity)
            .map_err(|e| format!("operation {i} ({op}): {e}"))?;
    }
    Ok(memory.stats)
}

/// How long one scenario may take (a few seconds is usual): past it, it hangs — a failure
/// like any other, with its seed.
const SCENARIO_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

async fn bounded(
    scenario: impl std::future::Future<Output = Result<Stats, String>>,
) -> Result<Stats, String> {
    tokio::time::timeout(SCENARIO_LIMIT, scenario)
        .await
        .unwrap_or_else(|_| Err(format!("hung: not done in {SCENARIO_LIMIT:?}")))
}

/// The shortest sequence, dropping one operation at a time, that still fails.
async fn shrink(tenant: &Tenant, mut ops: Vec<Op>, mut error: String) -> (Vec<Op>, String) {
    let mut i = 0;
    while i < ops.len() && ops.len() > 1 {
        let mut fewer = ops.clone();
        fewer.remove(i);
        match bounded(run_scenario(tenant, &fewer)).await {
            Err(e) => {
                ops = fewer;
                error = e;
            }
            Ok(_) => i += 1,
        }
    }
    (ops, error)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// One scenario from its seed: what it did, or the seed, the shortest failing sequence and why.
async fn scenario(seed: u64) -> Result<(usize, Stats), String> {
    let mut rng = Rng(seed);
    let tenant = generate_tenant(&mut rng);
    let ops = generate_ops(&mut rng, &tenant);
    match bounded(run_scenario(&tenant, &ops)).await {
        Ok(done) => Ok((ops.len(), done)),
        Err(error) => {
            let (ops, error) = shrink(&tenant, ops, error).await;
            Err(format!(
                "seed {seed} fails (rerun: REVOKE365_FUZZ_SEED={seed} REVOKE365_FUZZ_SCENARIOS=1)\n\
                 shortest sequence: {ops:#?}\n{error}\ntenant: {}",
                serde_json::to_string(&tenant.fixture).unwrap_or_default()
            ))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_tenants_and_operations_keep_every_invariant() {
    let scenarios = env_number("REVOKE365_FUZZ_SCENARIOS", DEFAULT_SCENARIOS);
    let first = env_number("REVOKE365_FUZZ_SEED", 1);
    // Scenarios wait on the simulator's latency most of the time: several run at once, each
    // with a tenant, store and engine of its own.
    let parallel = env_number("REVOKE365_FUZZ_PARALLEL", 4).max(1) as usize;
    let started = std::time::Instant::now();
    let (mut operations, mut stats, mut finished) = (0, Stats::default(), 0u64);
    let mut seeds = first..first + scenarios;
    // Polled on this task (the engine's futures are not all `Send`), concurrently.
    let mut running = futures_util::stream::FuturesUnordered::new();
    let mut failures = Vec::new();
    loop {
        while running.len() < parallel && failures.is_empty() {
            let Some(seed) = seeds.next() else { break };
            running.push(scenario(seed));
        }
        let Some(done) = futures_util::StreamExt::next(&mut running).await else {
            break;
        };
        match done {
            Ok((ops, done)) => {
                operations += ops;
                stats += done;
                finished += 1;
                if finished % 500 == 0 {
                    eprintln!(
                        "{finished} scenarios, {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!(
        "{scenarios} scenarios from seed {first}, {operations} operations, {:.1} s: {stats:?}",
        started.elapsed().as_secs_f64()
    );
    // A check that exercised nothing proves nothing.
    assert!(stats.removed > 0 && stats.live_runs > 0, "{stats:?}");
}
