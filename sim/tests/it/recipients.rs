//! Send As beyond mailboxes (groups, contacts, mail users), ACEs `-Trustee`
//! misses, the spellings of a trustee, and every form of identity resolution.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{cmdlet, field, real_quiet, TestSim, PETER, PETER2};

async fn one(sim: &TestSim, name: &str, parameters: Value) -> Value {
    let answer = sim.exo(&cmdlet(name, parameters)).await;
    assert_eq!(answer.status, 200, "{name}: {}", answer.body);
    assert_eq!(answer.values().len(), 1, "{name}: {}", answer.body);
    answer.values()[0].clone()
}

async fn all(sim: &TestSim, name: &str, parameters: Value) -> Vec<Value> {
    sim.exo_all(&cmdlet(name, parameters)).await.0
}

/// `(Identity, Trustee)` of Send As entries.
fn pairs(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|i| {
            (
                i["Identity"].as_str().unwrap().to_string(),
                i["Trustee"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(identity: &str, trustee: &str) -> (String, String) {
    (identity.to_string(), trustee.to_string())
}

#[tokio::test]
async fn get_recipient_resolves_every_kind() {
    let sim = TestSim::real().await;
    let cases = [
        (
            "allstaff@initech.com",
            "All Staff",
            "MailUniversalDistributionGroup",
        ),
        ("Project X", "Project X", "GroupMailbox"),
        (
            "tps-reports@initech.com",
            "TPS Reports",
            "MailUniversalSecurityGroup",
        ),
        (
            "orders@chotchkies.example",
            "Chotchkie's Catering",
            "MailContact",
        ),
        ("bob.slydell@consultants.example", "bob.slydell", "MailUser"),
        ("support@initech.com", "support", "SharedMailbox"),
        ("pgibbons@initech.com", "peter.gibbons", "UserMailbox"),
    ];
    for (identity, name, kind) in cases {
        let item = one(&sim, "Get-Recipient", json!({"Identity": identity})).await;
        assert_eq!(item["Name"], name, "{identity}");
        assert_eq!(item["Identity"], name, "{identity}");
        assert_eq!(item["RecipientTypeDetails"], kind, "{identity}");
        let dn = item["DistinguishedName"].as_str().unwrap();
        assert!(dn.starts_with(&format!("CN={name},OU=")), "{dn}");
        assert_eq!(
            item["ExternalDirectoryObjectId"].as_str().unwrap().len(),
            36
        );
        assert!(item["Alias"].is_string());
    }
    let group = one(&sim, "Get-Recipient", json!({"Identity": "All Staff"})).await;
    assert_eq!(group["PrimarySmtpAddress"], "allstaff@initech.com");
    assert_eq!(group["Alias"], "allstaff");

    // Not Exchange recipients: a security group that is not mail-enabled, a user without mail.
    for identity in ["Initech Security", "michael.bolton@initech.com"] {
        let answer = sim
            .exo(&cmdlet("Get-Recipient", json!({"Identity": identity})))
            .await;
        assert_eq!(answer.status, 500, "{identity}");
        assert!(answer
            .exo_detail()
            .contains("ManagementObjectNotFoundException"));
    }
    // $select is honoured on the new fields too.
    let url = format!("{}?$select=Identity,DistinguishedName", sim.invoke_url());
    let selected = sim
        .exo_at(
            &url,
            &cmdlet("Get-Recipient", json!({"Identity": "Project X"})),
        )
        .await;
    let keys: Vec<&String> = selected.values()[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["DistinguishedName", "Identity"]);

    // Get-Mailbox lists mailboxes only.
    let mailboxes = all(&sim, "Get-Mailbox", json!({"ResultSize": "Unlimited"})).await;
    let upns = field(&mailboxes, "UserPrincipalName");
    assert_eq!(upns.len(), 14, "{upns:?}");
    for absent in [
        "bob.slydell@initech.onmicrosoft.com",
        "michael.bolton@initech.com",
    ] {
        assert!(!upns.contains(&absent), "{absent}");
    }
    let peter = mailboxes
        .iter()
        .find(|m| m["UserPrincipalName"] == PETER)
        .unwrap();
    assert_eq!(peter["PrimarySmtpAddress"], "peter@initech.com");
}

#[tokio::test]
async fn send_as_on_groups_contacts_and_mail_users_in_every_read_form() {
    let sim = TestSim::real().await;
    let on_group = all(
        &sim,
        "Get-RecipientPermission",
        json!({"Identity": "allstaff@initech.com", "AccessRights": "SendAs"}),
    )
    .await;
    assert_eq!(
        pairs(&on_group),
        [
            pair("All Staff", "lumbergh@initech.com"),
            pair("All Staff", PETER)
        ],
        "no NT AUTHORITY\\SELF entry on a group"
    );
    let on_contact = all(
        &sim,
        "Get-RecipientPermission",
        json!({"Identity": "Chotchkie's Catering"}),
    )
    .await;
    assert_eq!(
        pairs(&on_contact),
        [pair("Chotchkie's Catering", "lumbergh@initech.com")]
    );

    // By trustee: mailboxes first, then groups; the entry on sales@ is missed.
    let by_trustee = all(
        &sim,
        "Get-RecipientPermission",
        json!({"Trustee": PETER, "AccessRights": "SendAs", "ResultSize": "Unlimited"}),
    )
    .await;
    assert_eq!(
        field(&by_trustee, "Identity"),
        ["info", "All Staff", "Project X"]
    );
    let lookalike = all(&sim, "Get-RecipientPermission", json!({"Trustee": PETER2})).await;
    assert_eq!(field(&lookalike, "Identity"), ["bob.slydell", "sales"]);
    let group = all(
        &sim,
        "Get-RecipientPermission",
        json!({"Trustee": "TPS Reports"}),
    )
    .await;
    assert_eq!(pairs(&group), [pair("reports", "TPS Reports")]);
    let not_a_recipient = sim
        .exo(&cmdlet(
            "Get-RecipientPermission",
            json!({"Trustee": "Initech Security"}),
        ))
        .await;
    assert_eq!(not_a_recipient.status, 500);

    // Tenant-wide, paged: every recipient, SELF once per mailbox.
    let (everything, pages) = sim
        .exo_all(&cmdlet(
            "Get-RecipientPermission",
            json!({"ResultSize": "Unlimited"}),
        ))
        .await;
    assert!(pages > 5, "{pages}");
    let entries = pairs(&everything);
    let selfs = entries
        .iter()
        .filter(|(_, t)| t == "NT AUTHORITY\\SELF")
        .count();
    assert_eq!(selfs, 14);
    for expected in [
        pair("All Staff", PETER),
        pair("Project X", PETER),
        pair("Chotchkie's Catering", "lumbergh@initech.com"),
        pair("bob.slydell", PETER2),
        pair("sales", "peter.gibbons"),
        pair("info", PETER),
        pair("reports", "TPS Reports"),
    ] {
        assert!(entries.contains(&expected), "{expected:?} in {entries:?}");
    }
}

#[tokio::test]
async fn send_as_on_any_recipient_is_removed_and_restored() {
    let sim = TestSim::real().await;
    let initial = sim.handle.snapshot();
    let send_as = |verb: &str, identity: &str, trustee: &str| {
        cmdlet(
            &format!("{verb}-RecipientPermission"),
            json!({"Identity": identity, "Trustee": trustee, "AccessRights": ["SendAs"], "Confirm": false}),
        )
    };
    for identity in ["allstaff@initech.com", "project-x@initech.com"] {
        let removed = sim.exo(&send_as("Remove", identity, PETER)).await;
        assert_eq!(removed.status, 200, "{}", removed.body);
        assert!(removed.warnings().is_empty());
        let again = sim.exo(&send_as("Remove", identity, PETER)).await;
        assert_eq!(again.status, 200);
        let warning = again.warnings()[0];
        assert!(warning.contains("ACE isn't present"), "{warning}");
    }
    let again = sim.exo(&send_as("Remove", "All Staff", PETER)).await;
    assert!(again.warnings()[0].contains("\"CN=All Staff,OU="));
    let contact = sim
        .exo(&send_as(
            "Remove",
            "orders@chotchkies.example",
            "lumbergh@initech.com",
        ))
        .await;
    assert!(contact.warnings().is_empty(), "{}", contact.body);
    let mail_user = sim
        .exo(&send_as(
            "Remove",
            "bob.slydell@initech.onmicrosoft.com",
            PETER2,
        ))
        .await;
    assert!(mail_user.warnings().is_empty(), "{}", mail_user.body);

    let snapshot = sim.handle.snapshot();
    let allstaff = snapshot.recipient("allstaff@initech.com").unwrap();
    assert_eq!(allstaff.kind, "MailUniversalDistributionGroup");
    assert_eq!(allstaff.name, "All Staff");
    assert_eq!(users(&allstaff.send_as), ["lumbergh@initech.com"]);
    assert!(snapshot
        .recipient("project-x@initech.com")
        .unwrap()
        .send_as
        .is_empty());
    assert!(snapshot
        .recipient("orders@chotchkies.example")
        .unwrap()
        .send_as
        .is_empty());
    let bob = snapshot
        .recipient("bob.slydell@initech.onmicrosoft.com")
        .unwrap();
    assert_eq!(bob.kind, "MailUser");
    assert!(bob.send_as.is_empty());
    assert!(!snapshot
        .direct_grants_of(PETER)
        .iter()
        .any(|(r, _)| r.contains("allstaff") || r.contains("project-x")));

    for (identity, trustee) in [
        ("allstaff@initech.com", PETER),
        ("project-x@initech.com", PETER),
        ("orders@chotchkies.example", "lumbergh@initech.com"),
        ("bob.slydell@initech.onmicrosoft.com", PETER2),
    ] {
        let added = sim.exo(&send_as("Add", identity, trustee)).await;
        assert_eq!(added.status, 200, "{}", added.body);
        assert_eq!(added.values()[0]["AccessRights"], json!(["SendAs"]));
    }
    assert_eq!(sim.handle.snapshot().recipients, initial.recipients);
}

fn users(list: &[revoke365_sim::snapshot::SendAsGrant]) -> Vec<&str> {
    list.iter().map(|a| a.user.as_str()).collect()
}

#[tokio::test]
async fn an_ace_the_trustee_lookup_misses() {
    let sim = TestSim::real().await;
    let by_identity = all(
        &sim,
        "Get-RecipientPermission",
        json!({"Identity": "sales@initech.com"}),
    )
    .await;
    assert_eq!(
        pairs(&by_identity),
        [
            pair("sales", "NT AUTHORITY\\SELF"),
            pair("sales", PETER2),
            pair("sales", "peter.gibbons")
        ]
    );
    let both = all(
        &sim,
        "Get-RecipientPermission",
        json!({"Identity": "sales@initech.com", "Trustee": PETER}),
    )
    .await;
    assert!(both.is_empty(), "{both:?}");
    let state = sim.handle.snapshot();
    let entry = &state.mailbox("sales@initech.com").unwrap().send_as;
    assert!(entry
        .iter()
        .any(|a| a.user == PETER && a.trustee_lookup_misses));
    assert!(state
        .direct_grants_of(PETER)
        .contains(&("sales@initech.com".to_string(), "send_as")));

    // The name printed resolves to Peter, and removal by his UPN works.
    let named = one(&sim, "Get-Recipient", json!({"Identity": "peter.gibbons"})).await;
    assert_eq!(named["PrimarySmtpAddress"], "peter@initech.com");
    let removed = sim
        .exo(&cmdlet(
            "Remove-RecipientPermission",
            json!({"Identity": "sales@initech.com", "Trustee": PETER, "AccessRights": ["SendAs"], "Confirm": false}),
        ))
        .await;
    assert_eq!(removed.status, 200);
    assert!(removed.warnings().is_empty(), "{}", removed.body);
    assert_eq!(
        users(
            &sim.handle
                .snapshot()
                .mailbox("sales@initech.com")
                .unwrap()
                .send_as
        ),
        [PETER2]
    );
}

#[tokio::test]
async fn trustee_spellings_resolve_and_removal_by_upn_removes_them() {
    let sim = TestSim::real().await;
    let peter = one(&sim, "Get-User", json!({"Identity": PETER})).await;
    let id = peter["ExternalDirectoryObjectId"].as_str().unwrap();
    let sid = peter["Sid"].as_str().unwrap();
    assert!(
        sid.starts_with("S-1-5-21-") && sid.matches('-').count() == 7,
        "{sid}"
    );
    assert_eq!(peter["SamAccountName"], "peter.gibbons");
    assert_eq!(
        peter["SidHistory"],
        json!(["S-1-5-21-3623811015-3361044348-30300820-1013"])
    );
    let lumbergh = one(
        &sim,
        "Get-User",
        json!({"Identity": "lumbergh@initech.com"}),
    )
    .await;
    let lumbergh_sid = lumbergh["Sid"].as_str().unwrap();
    // The domain part of the SIDs is the tenant's.
    assert_eq!(
        sid.rsplit_once('-').unwrap().0,
        lumbergh_sid.rsplit_once('-').unwrap().0
    );

    let user_on = |mailbox: &'static str| {
        let sim = &sim;
        async move { all(sim, "Get-MailboxPermission", json!({"Identity": mailbox})).await }
    };
    let ceo = user_on("ceo@initech.com").await;
    let ceo_users = field(&ceo, "User");
    assert!(ceo_users.contains(&PETER), "upn: {ceo_users:?}");
    assert!(ceo_users.contains(&lumbergh_sid), "sid: {ceo_users:?}");
    assert!(ceo_users.contains(&PETER2));
    let finance = user_on("finance@initech.com").await;
    assert_eq!(
        field(&finance, "User"),
        [
            "NT AUTHORITY\\SELF",
            "Initech Security",
            "NAMPR01A001\\peter.gibbons"
        ]
    );
    let it = user_on("it@initech.com").await;
    assert_eq!(field(&it, "User"), ["NT AUTHORITY\\SELF", id]);

    // Every spelling resolves back to the account (Get-User and Get-Recipient).
    for spelling in [
        PETER,
        "peter.gibbons",
        id,
        sid,
        "NAMPR01A001\\peter.gibbons",
        "S-1-5-21-3623811015-3361044348-30300820-1013",
        "pgibbons@initech.com",
        "peter@initech.com",
    ] {
        for name in ["Get-User", "Get-Recipient"] {
            let found = one(&sim, name, json!({"Identity": spelling})).await;
            assert_eq!(found["ExternalDirectoryObjectId"], id, "{name} {spelling}");
        }
    }
    let found = one(&sim, "Get-User", json!({"Identity": lumbergh_sid})).await;
    assert_eq!(found["UserPrincipalName"], "lumbergh@initech.com");

    // -User filters accept the other spellings too.
    let filtered = all(
        &sim,
        "Get-MailboxPermission",
        json!({"Identity": "finance@initech.com", "User": sid}),
    )
    .await;
    assert_eq!(field(&filtered, "User"), ["NAMPR01A001\\peter.gibbons"]);

    // Removal by UPN removes the entry however it is shown.
    for mailbox in ["ceo@initech.com", "finance@initech.com", "it@initech.com"] {
        let removed = sim
            .exo(&cmdlet(
                "Remove-MailboxPermission",
                json!({"Identity": mailbox, "User": PETER, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}),
            ))
            .await;
        assert_eq!(removed.status, 200, "{}", removed.body);
        assert!(removed.warnings().is_empty(), "{mailbox}: {}", removed.body);
    }
    // ... the entry shown as a SID too; and removal works by other spellings as well.
    let remove = |mailbox: &str, user: &str| {
        cmdlet(
            "Remove-MailboxPermission",
            json!({"Identity": mailbox, "User": user, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}),
        )
    };
    for (mailbox, user) in [
        ("ceo@initech.com", "lumbergh@initech.com"),
        ("support@initech.com", "NAMPR01A001\\peter.gibbons"),
        ("legal@initech.com", sid),
    ] {
        let answer = sim.exo(&remove(mailbox, user)).await;
        if mailbox == "legal@initech.com" {
            // fail_mailboxes: the resolution worked, the write is denied.
            assert!(answer.exo_detail().contains("TaskAccessDeniedException"));
            continue;
        }
        assert!(
            answer.warnings().is_empty(),
            "{mailbox} {user}: {}",
            answer.body
        );
    }
    assert!(!sim
        .handle
        .snapshot()
        .mailbox("ceo@initech.com")
        .unwrap()
        .full_access
        .iter()
        .any(|a| a.user == "lumbergh@initech.com"));
    let snapshot = sim.handle.snapshot();
    for mailbox in [
        "ceo@initech.com",
        "finance@initech.com",
        "it@initech.com",
        "support@initech.com",
    ] {
        let users: Vec<&str> = snapshot
            .mailbox(mailbox)
            .unwrap()
            .full_access
            .iter()
            .map(|a| a.user.as_str())
            .collect();
        assert!(!users.contains(&PETER), "{mailbox}: {users:?}");
    }
    assert!(
        snapshot
            .mailbox("ceo@initech.com")
            .unwrap()
            .full_access
            .iter()
            .any(|a| a.user == PETER2),
        "the lookalike keeps his grant"
    );
}

#[tokio::test]
async fn guid_names() {
    let mut tenant = real_quiet();
    tenant.sim.guid_names = true;
    let sim = TestSim::start(tenant).await;
    let ceo = one(&sim, "Get-Mailbox", json!({"Identity": "ceo@initech.com"})).await;
    let id = ceo["ExternalDirectoryObjectId"].as_str().unwrap();
    assert_eq!(ceo["Name"], id);
    assert_eq!(ceo["Alias"], "ceo");
    assert!(ceo["DistinguishedName"]
        .as_str()
        .unwrap()
        .starts_with(&format!("CN={id},OU=")));
    let bob = one(
        &sim,
        "Get-Recipient",
        json!({"Identity": "bob.slydell@consultants.example"}),
    )
    .await;
    assert_eq!(
        ceo["GrantSendOnBehalfTo"],
        json!([bob["ExternalDirectoryObjectId"]])
    );
    let group = one(&sim, "Get-Recipient", json!({"Identity": "All Staff"})).await;
    assert_eq!(group["Name"], group["ExternalDirectoryObjectId"]);
    assert_eq!(group["DisplayName"], "All Staff");
    // Permission answers name recipients by Name: GUIDs now.
    let sales = all(
        &sim,
        "Get-RecipientPermission",
        json!({"Identity": "sales@initech.com"}),
    )
    .await;
    let peter = one(&sim, "Get-User", json!({"Identity": PETER})).await;
    assert!(
        field(&sales, "Trustee").contains(&peter["ExternalDirectoryObjectId"].as_str().unwrap())
    );
    assert_eq!(
        field(&sales, "Identity")[0],
        sim_name(&sim, "sales@initech.com").await
    );
    // The GUID name resolves, and removal by UPN still works.
    let by_guid = one(&sim, "Get-Recipient", json!({"Identity": id})).await;
    assert_eq!(by_guid["PrimarySmtpAddress"], "ceo@initech.com");
    assert_eq!(peter["SamAccountName"], "peter.gibbons");
}

async fn sim_name(sim: &TestSim, identity: &str) -> String {
    let item = one(sim, "Get-Recipient", json!({"Identity": identity})).await;
    item["Name"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn mail_users_and_users_without_a_recipient() {
    let sim = TestSim::real().await;
    const BOB: &str = "bob.slydell@initech.onmicrosoft.com";
    for name in ["Get-Mailbox", "Get-MailboxPermission"] {
        let answer = sim.exo(&cmdlet(name, json!({"Identity": BOB}))).await;
        assert_eq!(answer.status, 500, "{name}");
        assert!(answer.exo_detail().contains("couldn't be found"));
    }
    let bob = one(&sim, "Get-Recipient", json!({"Identity": BOB})).await;
    assert_eq!(bob["RecipientTypeDetails"], "MailUser");
    assert_eq!(bob["PrimarySmtpAddress"], "bob.slydell@consultants.example");
    let dn = bob["DistinguishedName"].as_str().unwrap().to_string();
    assert!(dn.starts_with("CN=bob.slydell,OU="), "{dn}");

    // The DN filter finds the mailboxes delegating Send on Behalf to the mail user.
    let filter = format!("GrantSendOnBehalfTo -eq '{}'", dn.replace('\'', "''"));
    let delegating = all(
        &sim,
        "Get-Mailbox",
        json!({"Filter": filter, "ResultSize": "Unlimited"}),
    )
    .await;
    assert_eq!(field(&delegating, "UserPrincipalName"), ["ceo@initech.com"]);
    assert_eq!(delegating[0]["GrantSendOnBehalfTo"], json!(["bob.slydell"]));

    // A mail user can be a trustee of every kind.
    let add_fa = sim
        .exo(&cmdlet(
            "Add-MailboxPermission",
            json!({"Identity": "info@initech.com", "User": BOB, "AccessRights": ["FullAccess"], "InheritanceType": "All"}),
        ))
        .await;
    assert_eq!(add_fa.status, 200, "{}", add_fa.body);
    let add_sa = sim
        .exo(&cmdlet(
            "Add-RecipientPermission",
            json!({"Identity": "info@initech.com", "Trustee": "bob.slydell@consultants.example", "AccessRights": ["SendAs"], "Confirm": false}),
        ))
        .await;
    assert_eq!(add_sa.status, 200, "{}", add_sa.body);
    let as_trustee = all(&sim, "Get-RecipientPermission", json!({"Trustee": BOB})).await;
    assert_eq!(field(&as_trustee, "Identity"), ["info"]);
    let remove_sob = sim
        .exo(&cmdlet(
            "Set-Mailbox",
            json!({"Identity": "ceo@initech.com", "GrantSendOnBehalfTo": {"@odata.type": "#Exchange.GenericHashTable", "remove": BOB}}),
        ))
        .await;
    assert_eq!(remove_sob.status, 200);
    assert!(remove_sob.warnings().is_empty(), "{}", remove_sob.body);
    let snapshot = sim.handle.snapshot();
    assert_eq!(
        snapshot.direct_grants_of(BOB),
        [
            ("info@initech.com".to_string(), "full_access"),
            ("info@initech.com".to_string(), "send_as")
        ]
    );
    assert!(
        snapshot.mailbox(BOB).is_none(),
        "a mail user has no mailbox"
    );

    // Get-User knows every person; a User is no recipient.
    let michael = one(
        &sim,
        "Get-User",
        json!({"Identity": "michael.bolton@initech.com"}),
    )
    .await;
    assert_eq!(michael["RecipientTypeDetails"], "User");
    assert_eq!(michael["WindowsEmailAddress"], "michael.bolton@initech.com");
    assert!(michael["DistinguishedName"]
        .as_str()
        .unwrap()
        .starts_with("CN=michael.bolton,"));
    let bob_user = one(&sim, "Get-User", json!({"Identity": BOB})).await;
    assert_eq!(bob_user["RecipientTypeDetails"], "MailUser");
    let users = all(&sim, "Get-User", json!({"ResultSize": "Unlimited"})).await;
    assert_eq!(users.len(), 16);
    let kinds: std::collections::BTreeSet<&str> =
        field(&users, "RecipientTypeDetails").into_iter().collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["MailUser", "SharedMailbox", "User", "UserMailbox"]
    );
    let unknown = sim
        .exo(&cmdlet(
            "Get-User",
            json!({"Identity": "nobody@initech.com"}),
        ))
        .await;
    assert_eq!(unknown.status, 500);

    // Graph: every person is a user; only mailboxes have calendars.
    let user = sim.graph_get(&format!("/v1.0/users/{BOB}")).await;
    assert_eq!(user.status, 200);
    assert_eq!(user.body["mail"], "bob.slydell@consultants.example");
    let by_mail = sim
        .graph_get("/v1.0/users/bob.slydell@consultants.example")
        .await;
    assert_eq!(by_mail.status, 404);
    for path in [
        format!("/v1.0/users/{BOB}/calendar/calendarPermissions"),
        "/v1.0/users/michael.bolton@initech.com/calendar/calendarPermissions".to_string(),
    ] {
        let answer = sim.graph_get(&path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.body["error"]["code"], "MailboxNotEnabledForRESTAPI");
    }
    let mail = json!({"message": {"subject": "s", "body": {"contentType": "Text", "content": "x"},
        "toRecipients": [{"emailAddress": {"address": "a@b.example"}}]}});
    let send = sim
        .graph(
            Method::POST,
            &format!("/v1.0/users/{BOB}/sendMail"),
            Some(&mail.to_string()),
        )
        .await;
    assert_eq!(send.status, 404);
    assert_eq!(send.body["error"]["code"], "MailboxNotEnabledForRESTAPI");
    let michael = sim
        .graph_get(
            "/v1.0/users/michael.bolton@initech.com/transitiveMemberOf/microsoft.graph.group",
        )
        .await;
    assert_eq!(michael.values()[0]["displayName"], "Initech Security");
    assert_eq!(michael.values()[0]["mail"], Value::Null);
}

#[tokio::test]
async fn graph_users_by_mail_and_proxy_address() {
    let sim = TestSim::real().await;
    let peter = sim.graph_get(&format!("/v1.0/users/{PETER}")).await;
    assert_eq!(peter.body["mail"], "peter@initech.com");
    assert_eq!(peter.body["accountEnabled"], true);
    assert_eq!(
        peter.body["proxyAddresses"],
        json!([
            "SMTP:peter@initech.com",
            "smtp:pgibbons@initech.com",
            "smtp:peter.gibbons@initech.onmicrosoft.com"
        ])
    );
    let milton = sim
        .graph_get("/v1.0/users/milton@initech.com?$select=accountEnabled")
        .await;
    assert_eq!(milton.body["accountEnabled"], false);
    // The address is not the UPN: /users/{address} does not find him.
    let by_address = sim.graph_get("/v1.0/users/peter@initech.com").await;
    assert_eq!(by_address.status, 404);
    assert_eq!(by_address.body["error"]["code"], "Request_ResourceNotFound");

    let filter = |f: &str| format!("/v1.0/users?$filter={}", urlencoding::encode(f));
    let by_mail = sim.graph_get(&filter("mail eq 'PETER@initech.com'")).await;
    assert_eq!(by_mail.status, 200, "{}", by_mail.body);
    assert!(by_mail.body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/v1.0/$metadata#users"));
    assert_eq!(field(by_mail.values(), "userPrincipalName"), [PETER]);
    let by_proxy = sim
        .graph_get(&format!(
            "{}&$select=id,userPrincipalName",
            filter("proxyAddresses/any(p:p eq 'smtp:PGibbons@initech.com')")
        ))
        .await;
    assert_eq!(by_proxy.status, 200);
    let item = by_proxy.values()[0].as_object().unwrap();
    assert_eq!(item.keys().collect::<Vec<_>>(), ["id", "userPrincipalName"]);
    assert_eq!(item["userPrincipalName"], PETER);
    // The primary address is a proxy address too; a mail user's mail is found.
    let primary = sim
        .graph_get(&filter(
            "proxyAddresses/any(x:x eq 'SMTP:peter@initech.com')",
        ))
        .await;
    assert_eq!(primary.values().len(), 1);
    let bob = sim
        .graph_get(&filter("mail eq 'bob.slydell@consultants.example'"))
        .await;
    assert_eq!(
        bob.values()[0]["userPrincipalName"],
        "bob.slydell@initech.onmicrosoft.com"
    );
    let none = sim
        .graph_get(&filter("mail eq 'o''brien@initech.com'"))
        .await;
    assert_eq!(none.status, 200);
    assert!(none.values().is_empty());

    for unsupported in [
        "startswith(mail,'peter')",
        "mail eq 'a@x.com' or mail eq 'b@x.com'",
        "displayName eq 'Peter Gibbons'",
    ] {
        let answer = sim.graph_get(&filter(unsupported)).await;
        assert_eq!(answer.status, 400, "{unsupported}");
        assert_eq!(answer.body["error"]["code"], "Request_UnsupportedQuery");
    }
    // Without a filter: every user, a page at a time; signInActivity only when selected.
    let all = sim
        .graph_get("/v1.0/users?$select=id,userPrincipalName")
        .await;
    assert_eq!(all.status, 200);
    assert!(!all.values().is_empty());
    assert!(all
        .values()
        .iter()
        .all(|u| u.get("signInActivity").is_none()));
    let sign_ins = sim
        .graph_get("/v1.0/users?$select=id,userPrincipalName,signInActivity")
        .await;
    assert_eq!(sign_ins.status, 200);
    assert!(sign_ins
        .values()
        .iter()
        .all(|u| u.as_object().unwrap().contains_key("signInActivity")));
    assert_eq!(sim.requests("graph GET /users?$filter"), 10);

    // Exchange resolves proxy addresses too.
    let mailbox = one(
        &sim,
        "Get-Mailbox",
        json!({"Identity": "pgibbons@initech.com"}),
    )
    .await;
    assert_eq!(mailbox["UserPrincipalName"], PETER);
}
