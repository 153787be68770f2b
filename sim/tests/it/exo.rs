use serde_json::{json, Value};

use crate::common::{users, TestSim};

fn cmdlet(name: &str, parameters: Value) -> String {
    json!({"CmdletInput": {"CmdletName": name, "Parameters": parameters}}).to_string()
}

fn field<'a>(items: &'a [Value], name: &str) -> Vec<&'a str> {
    items
        .iter()
        .map(|i| i[name].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn get_mailbox_pages_through_next_link() {
    let sim = TestSim::acme().await;
    let body =
        r#"{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"ResultSize":"Unlimited"}}}"#;
    let first = sim.exo(body).await;
    assert_eq!(first.status, 200);
    assert!(first.body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#Collection(Exchange.GenericHashTable)"));
    assert_eq!(first.values().len(), 3);
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!(
            "{}/adminapi/beta/{}/InvokeCommand?$skiptoken=",
            sim.handle.base_url, sim.tenant
        )),
        "{next}"
    );

    let (items, pages) = sim.exo_all(body).await;
    assert_eq!(pages, 4);
    let upns = field(&items, "UserPrincipalName");
    assert_eq!(upns.len(), 10);
    assert!(
        upns.windows(2).all(|w| w[0] < w[1]),
        "stable order: {upns:?}"
    );
    let support = items
        .iter()
        .find(|m| m["UserPrincipalName"] == "support@acmecorp.com")
        .unwrap();
    assert_eq!(support["RecipientTypeDetails"], "SharedMailbox");
    assert_eq!(support["Name"], "support");
    assert!(support["DistinguishedName"]
        .as_str()
        .unwrap()
        .starts_with("CN=support,OU="));
    assert_eq!(sim.requests("exo Get-Mailbox"), 5);
}

#[tokio::test]
async fn select_limits_fields() {
    let sim = TestSim::acme().await;
    let url = format!(
        "{}?$select=UserPrincipalName,RecipientTypeDetails",
        sim.invoke_url()
    );
    let body = cmdlet("Get-Mailbox", json!({"Identity": "billing@acmecorp.com"}));
    let answer = sim.exo_at(&url, &body).await;
    assert_eq!(
        answer.values()[0],
        json!({"UserPrincipalName": "billing@acmecorp.com", "RecipientTypeDetails": "SharedMailbox"})
    );
}

#[tokio::test]
async fn send_on_behalf_filter_by_dn() {
    let sim = TestSim::hard().await;
    let john = sim
        .exo(&cmdlet(
            "Get-Mailbox",
            json!({"Identity": "john.smith@globexcorp.com"}),
        ))
        .await;
    let dn = john.values()[0]["DistinguishedName"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(dn.starts_with("CN=john.smith,OU="), "{dn}");
    assert_eq!(
        john.values()[0]["GrantSendOnBehalfTo"],
        json!(["john.smith2"])
    );

    let filter = format!("GrantSendOnBehalfTo -eq '{}'", dn.replace('\'', "''"));
    let body = cmdlet(
        "Get-Mailbox",
        json!({"ResultSize": "Unlimited", "Filter": filter}),
    );
    let (items, _) = sim.exo_all(&body).await;
    assert_eq!(field(&items, "UserPrincipalName"), ["sales@globexcorp.com"]);
    // Canonical (byte) order of the delegates' UPNs: '2' sorts before '@'.
    assert_eq!(
        items[0]["GrantSendOnBehalfTo"],
        json!(["john.smith2", "john.smith"])
    );

    let by_upn = cmdlet(
        "Get-Mailbox",
        json!({"Filter": "GrantSendOnBehalfTo -eq 'john.smith2@globexcorp.com'"}),
    );
    let (items, _) = sim.exo_all(&by_upn).await;
    assert_eq!(
        field(&items, "UserPrincipalName"),
        ["john.smith@globexcorp.com", "sales@globexcorp.com"]
    );

    let bad = sim
        .exo(&cmdlet(
            "Get-Mailbox",
            json!({"Filter": "DisplayName -like 'John*'"}),
        ))
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.exo_detail().contains("Cannot bind parameter 'Filter'"),
        "{}",
        bad.body
    );
}

#[tokio::test]
async fn get_mailbox_permission_lists_self_first() {
    let sim = TestSim::acme().await;
    let body = r#"{"CmdletInput":{"CmdletName":"Get-MailboxPermission","Parameters":{"Identity":"ceo@acmecorp.com"}}}"#;
    let (items, _) = sim.exo_all(body).await;
    assert_eq!(
        items[0],
        json!({"Identity": "ceo", "User": "NT AUTHORITY\\SELF", "AccessRights": ["FullAccess", "ReadPermission"], "IsInherited": false, "Deny": false})
    );
    let john = items
        .iter()
        .find(|i| i["User"] == "john.smith@acmecorp.com")
        .unwrap();
    assert_eq!(john["AccessRights"], json!(["FullAccess"]));
    assert_eq!(john["IsInherited"], false);
    let admin = items
        .iter()
        .find(|i| i["User"] == "it.admin@acmecorp.com")
        .unwrap();
    assert_eq!(admin["IsInherited"], true);
    assert_eq!(items.len(), 4);

    let unknown = sim
        .exo(&cmdlet(
            "Get-MailboxPermission",
            json!({"Identity": "nobody@acmecorp.com"}),
        ))
        .await;
    assert_eq!(unknown.status, 500);
    assert!(
        unknown.exo_detail().contains("couldn't be found"),
        "{}",
        unknown.body
    );
}

#[tokio::test]
async fn recipient_permission_by_trustee() {
    let sim = TestSim::acme().await;
    let body = r#"{"CmdletInput":{"CmdletName":"Get-RecipientPermission","Parameters":{"Trustee":"john.smith@acmecorp.com","AccessRights":"SendAs","ResultSize":"Unlimited"}}}"#;
    let (items, _) = sim.exo_all(body).await;
    assert_eq!(field(&items, "Identity"), ["billing", "info"]);
    assert!(items
        .iter()
        .all(|i| i["Trustee"] == "john.smith@acmecorp.com" && i["AccessControlType"] == "Allow"));
    assert_eq!(items[0]["AccessRights"], json!(["SendAs"]));

    let hard = TestSim::hard().await;
    let group = r#"{"CmdletInput":{"CmdletName":"Get-RecipientPermission","Parameters":{"Trustee":"Finance Team","AccessRights":"SendAs"}}}"#;
    let (items, _) = hard.exo_all(group).await;
    assert_eq!(field(&items, "Identity"), ["cfo"]);
    assert_eq!(items[0]["Trustee"], "Finance Team");

    let john = cmdlet(
        "Get-RecipientPermission",
        json!({"Trustee": "john.smith@globexcorp.com"}),
    );
    let (items, _) = hard.exo_all(&john).await;
    let entries: Vec<(&str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["Identity"].as_str().unwrap(),
                i["AccessControlType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [("hr", "Deny"), ("info", "Allow")],
        "group-held Send As is not returned for the user"
    );

    let with_identity = cmdlet(
        "Get-RecipientPermission",
        json!({"Identity": "info@globexcorp.com"}),
    );
    let (items, _) = hard.exo_all(&with_identity).await;
    assert_eq!(
        field(&items, "Trustee"),
        ["NT AUTHORITY\\SELF", "john.smith@globexcorp.com"]
    );

    let unknown = hard
        .exo(&cmdlet(
            "Get-RecipientPermission",
            json!({"Trustee": "ghost@globexcorp.com"}),
        ))
        .await;
    assert_eq!(unknown.status, 500);
    assert!(unknown.exo_detail().contains("couldn't be found"));
}

#[tokio::test]
async fn remove_permissions_then_warn_when_already_gone() {
    let sim = TestSim::acme().await;
    let remove_fa = r#"{"CmdletInput":{"CmdletName":"Remove-MailboxPermission","Parameters":{"Identity":"ceo@acmecorp.com","User":"john.smith@acmecorp.com","AccessRights":["FullAccess"],"InheritanceType":"All","Confirm":false}}}"#;
    let first = sim.exo(remove_fa).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.warnings().is_empty());
    let (items, _) = sim
        .exo_all(&cmdlet(
            "Get-MailboxPermission",
            json!({"Identity": "ceo@acmecorp.com"}),
        ))
        .await;
    assert!(!field(&items, "User").contains(&"john.smith@acmecorp.com"));
    assert!(
        field(&items, "User").contains(&"jane.doe@acmecorp.com"),
        "only John's entry is removed"
    );
    let second = sim.exo(remove_fa).await;
    assert_eq!(second.status, 200);
    let warning = second.warnings()[0];
    assert!(
        warning.contains("ACE doesn't exist on the object") && warning.contains("CN=ceo,"),
        "{warning}"
    );

    let remove_sa = r#"{"CmdletInput":{"CmdletName":"Remove-RecipientPermission","Parameters":{"Identity":"info@acmecorp.com","Trustee":"john.smith@acmecorp.com","AccessRights":["SendAs"],"Confirm":false}}}"#;
    assert!(sim.exo(remove_sa).await.warnings().is_empty());
    let info = sim.mailbox_state("info@acmecorp.com");
    assert_eq!(users(&info["send_as"]), ["jane.doe@acmecorp.com"]);
    let again = sim.exo(remove_sa).await;
    assert!(
        again.warnings()[0].contains("because the ACE isn't present"),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn remove_orphaned_sid_verbatim_and_unknown_user() {
    let sim = TestSim::hard().await;
    let sid = "S-1-5-21-1004336348-1177238915-682003330-512";
    let remove = |user: &str| {
        cmdlet(
            "Remove-MailboxPermission",
            json!({"Identity": "ceo@globexcorp.com", "User": user, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}),
        )
    };
    assert_eq!(sim.exo(&remove(sid)).await.status, 200);
    assert!(
        !users(&sim.mailbox_state("ceo@globexcorp.com")["full_access"]).contains(&sid.to_string())
    );
    let unknown = sim.exo(&remove("ghost@globexcorp.com")).await;
    assert_eq!(unknown.status, 500);
    assert!(unknown.exo_detail().contains("couldn't be found"));
    // John's inherited entry stays: only the explicit one is removed.
    assert_eq!(
        sim.exo(&remove("john.smith@globexcorp.com")).await.status,
        200
    );
    let remaining: Vec<Value> = sim.mailbox_state("ceo@globexcorp.com")["full_access"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["user"] == "john.smith@globexcorp.com")
        .cloned()
        .collect();
    assert_eq!(
        remaining,
        [
            json!({"user": "john.smith@globexcorp.com", "inherited": true, "deny": false, "access_rights": ["FullAccess"]})
        ]
    );
}

#[tokio::test]
async fn set_mailbox_send_on_behalf_remove_and_add() {
    let sim = TestSim::acme().await;
    let edit = |verb: &str| {
        format!(
            r##"{{"CmdletInput":{{"CmdletName":"Set-Mailbox","Parameters":{{"Identity":"sales@acmecorp.com","GrantSendOnBehalfTo":{{"@odata.type":"#Exchange.GenericHashTable","{verb}":"john.smith@acmecorp.com"}}}}}}}}"##
        )
    };
    let removed = sim.exo(&edit("remove")).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(removed.warnings().is_empty());
    let sales = sim
        .exo(&cmdlet(
            "Get-Mailbox",
            json!({"Identity": "sales@acmecorp.com"}),
        ))
        .await;
    assert_eq!(
        sales.values()[0]["GrantSendOnBehalfTo"],
        json!(["jane.doe"])
    );
    let again = sim.exo(&edit("remove")).await;
    assert!(
        again.warnings()[0].contains("no settings of 'sales' have been modified"),
        "{}",
        again.body
    );
    assert_eq!(sim.exo(&edit("add")).await.status, 200);
    assert_eq!(
        sim.mailbox_state("sales@acmecorp.com")["send_on_behalf"],
        json!(["jane.doe@acmecorp.com", "john.smith@acmecorp.com"])
    );
}

#[tokio::test]
async fn add_permissions_restore_grants() {
    let sim = TestSim::acme().await;
    let initial = sim.state()["mailboxes"].clone();
    for body in [
        r#"{"CmdletInput":{"CmdletName":"Remove-MailboxPermission","Parameters":{"Identity":"finance@acmecorp.com","User":"john.smith@acmecorp.com","AccessRights":["FullAccess"],"InheritanceType":"All","Confirm":false}}}"#,
        r#"{"CmdletInput":{"CmdletName":"Remove-RecipientPermission","Parameters":{"Identity":"billing@acmecorp.com","Trustee":"john.smith@acmecorp.com","AccessRights":["SendAs"],"Confirm":false}}}"#,
    ] {
        assert_eq!(sim.exo(body).await.status, 200);
    }
    assert_ne!(sim.state()["mailboxes"], initial);
    let add_fa = r#"{"CmdletInput":{"CmdletName":"Add-MailboxPermission","Parameters":{"Identity":"finance@acmecorp.com","User":"john.smith@acmecorp.com","AccessRights":["FullAccess"],"InheritanceType":"All","AutoMapping":false}}}"#;
    let added = sim.exo(add_fa).await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.values()[0]["User"], "john.smith@acmecorp.com");
    let add_sa = r#"{"CmdletInput":{"CmdletName":"Add-RecipientPermission","Parameters":{"Identity":"billing@acmecorp.com","Trustee":"john.smith@acmecorp.com","AccessRights":["SendAs"],"Confirm":false}}}"#;
    assert_eq!(sim.exo(add_sa).await.status, 200);
    assert_eq!(sim.state()["mailboxes"], initial);
    assert!(
        !sim.exo(add_sa).await.warnings().is_empty(),
        "adding twice warns"
    );
}

#[tokio::test]
async fn get_recipient_resolves_names() {
    let sim = TestSim::hard().await;
    let ambiguous = sim
        .exo(&cmdlet("Get-Recipient", json!({"Identity": "John Smith"})))
        .await;
    assert_eq!(ambiguous.status, 500);
    assert!(
        ambiguous
            .exo_detail()
            .contains("'John Smith' matches multiple entries"),
        "{}",
        ambiguous.body
    );
    let lookalike = sim
        .exo(&cmdlet("Get-Recipient", json!({"Identity": "John Smith2"})))
        .await;
    assert_eq!(
        lookalike.values()[0]["PrimarySmtpAddress"],
        "john.smith2@globexcorp.com"
    );
    let group = sim
        .exo(&cmdlet(
            "Get-Recipient",
            json!({"Identity": "Finance Team"}),
        ))
        .await;
    let group = &group.values()[0];
    assert_eq!(group["RecipientTypeDetails"], "MailUniversalSecurityGroup");
    assert_eq!(group["PrimarySmtpAddress"], "finance-team@globexcorp.com");
    let sid = sim
        .exo(&cmdlet(
            "Get-Recipient",
            json!({"Identity": "S-1-5-21-1004336348-1177238915-682003330-512"}),
        ))
        .await;
    assert_eq!(sid.status, 500);
    assert!(sid.exo_detail().contains("couldn't be found"));
}

#[tokio::test]
async fn folder_permission_needs_the_localized_folder_name() {
    let sim = TestSim::hard().await;
    let english = sim
        .exo(&cmdlet(
            "Get-MailboxFolderPermission",
            json!({"Identity": "ceo@globexcorp.com:\\Calendar"}),
        ))
        .await;
    assert_eq!(english.status, 500);
    let (german, _) = sim
        .exo_all(&cmdlet(
            "Get-MailboxFolderPermission",
            json!({"Identity": "ceo@globexcorp.com:\\Kalender"}),
        ))
        .await;
    // Folder permissions name users by display name: John and his namesake collide.
    assert_eq!(
        field(&german, "User"),
        ["Default", "Anonymous", "John Smith", "John Smith"]
    );
    assert_eq!(german[2]["SharingPermissionFlags"], "Delegate");
}

#[tokio::test]
async fn request_errors() {
    let sim = TestSim::acme().await;
    let body = r#"{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{}}}"#;
    let no_anchor = sim
        .http
        .post(sim.invoke_url())
        .bearer_auth(sim.token(crate::common::EXO_SCOPE).await)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_anchor.status(), 400);
    let error: Value = no_anchor.json().await.unwrap();
    assert!(error["error"]["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("X-AnchorMailbox"));

    let cases = [
        ("{not json", "CmdletInput"),
        (r#"{"Cmdlet":{}}"#, "CmdletInput"),
        (
            r#"{"CmdletInput":{"CmdletName":"Get-Mailbux","Parameters":{}}}"#,
            "Get-Mailbux",
        ),
        (
            r#"{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"Idnetity":"x"}}}"#,
            "Idnetity",
        ),
        (
            r#"{"CmdletInput":{"CmdletName":"Get-MailboxPermission","Parameters":{}}}"#,
            "Identity",
        ),
        (
            r#"{"CmdletInput":{"CmdletName":"Remove-RecipientPermission","Parameters":{"Identity":"info@acmecorp.com","Trustee":"john.smith@acmecorp.com","AccessRights":["FullAccess"]}}}"#,
            "AccessRights",
        ),
    ];
    for (body, named) in cases {
        let answer = sim.exo(body).await;
        assert_eq!(answer.status, 400, "{body}");
        let error = &answer.body["error"];
        assert!(
            error["code"].is_string()
                && error["innererror"]["internalException"]["message"].is_string()
        );
        assert!(
            answer.exo_detail().contains(named),
            "{body}: {}",
            answer.exo_detail()
        );
    }
    // Cmdlet names match case-insensitively and are counted canonically.
    let lower = sim.exo(r#"{"CmdletInput":{"CmdletName":"get-mailboxpermission","Parameters":{"identity":"ceo@acmecorp.com"}}}"#).await;
    assert_eq!(lower.status, 200);
    assert_eq!(sim.requests("exo Get-MailboxPermission"), 2);
}

#[tokio::test]
async fn exchange_batch() {
    let sim = TestSim::acme().await;
    let url = sim.invoke_url();
    let body = json!({"requests": [
        {"id": "1", "method": "POST", "url": url, "headers": {"X-AnchorMailbox": "UPN:ceo@acmecorp.com", "X-CmdletName": "Get-MailboxPermission"},
         "body": {"CmdletInput": {"CmdletName": "Get-MailboxPermission", "Parameters": {"Identity": "ceo@acmecorp.com"}}}},
        {"id": "2", "method": "POST", "url": url, "headers": {"X-AnchorMailbox": "UPN:nobody@acmecorp.com"},
         "body": {"CmdletInput": {"CmdletName": "Get-MailboxPermission", "Parameters": {"Identity": "nobody@acmecorp.com"}}}}
    ]});
    let answer = sim
        .exo_at(
            &sim.url(&format!("/adminapi/beta/{}/$batch", sim.tenant)),
            &body.to_string(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let responses = answer.body["responses"].as_array().unwrap();
    assert_eq!(responses[0]["status"], 200);
    assert_eq!(
        responses[0]["body"]["value"][0]["User"],
        "NT AUTHORITY\\SELF"
    );
    assert_eq!(responses[1]["status"], 500);
    assert_eq!(sim.requests("exo Get-MailboxPermission"), 2);
}
