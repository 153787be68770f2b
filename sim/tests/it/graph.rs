use reqwest::Method;
use revoke365_sim::Fixture;
use serde_json::{json, Value};

use crate::common::TestSim;

#[tokio::test]
async fn user_lookup_is_exact() {
    let sim = TestSim::hard().await;
    let select = "?$select=id,displayName,userPrincipalName,mail,accountEnabled";
    let john = sim
        .graph_get(&format!("/v1.0/users/john.smith@globexcorp.com{select}"))
        .await;
    assert_eq!(john.status, 200);
    assert_eq!(john.body["userPrincipalName"], "john.smith@globexcorp.com");
    assert_eq!(john.body["displayName"], "John Smith");
    assert_eq!(john.body["mail"], "john.smith@globexcorp.com");
    assert_eq!(john.body["accountEnabled"], true);
    let id = john.body["id"].as_str().unwrap().to_string();

    let by_id = sim.graph_get(&format!("/v1.0/users/{id}")).await;
    assert_eq!(by_id.body["userPrincipalName"], "john.smith@globexcorp.com");
    let upper = sim.graph_get("/v1.0/users/John.Smith@GlobexCorp.com").await;
    assert_eq!(upper.body["id"], id.as_str());
    let lookalike = sim
        .graph_get("/v1.0/users/john.smith2@globexcorp.com")
        .await;
    assert_ne!(lookalike.body["id"], id.as_str());

    for unknown in [
        "john.smith@globexcorp.co",
        "john.smit@globexcorp.com",
        "John Smith",
    ] {
        let answer = sim
            .graph_get(&format!("/v1.0/users/{}", urlencoding::encode(unknown)))
            .await;
        assert_eq!(answer.status, 404, "{unknown}");
        assert_eq!(answer.body["error"]["code"], "Request_ResourceNotFound");
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("Resource '{unknown}' does not exist")),
            "{message}"
        );
    }

    let shared = sim
        .graph_get("/v1.0/users/info@globexcorp.com?$select=id,accountEnabled")
        .await;
    assert_eq!(shared.body["accountEnabled"], false);
    assert!(shared.body.get("displayName").is_none(), "$select honoured");
}

#[tokio::test]
async fn transitive_member_of_is_paged() {
    let groups: Vec<Value> = (1..=5)
        .map(|i| json!({"name": format!("Group {i}"), "members": ["ann@example.com"]}))
        .collect();
    let fixture = json!({
        "tenant_id": "t-1",
        "organization": {"company_id": "ex", "company_name": "Example", "m365_permission_ticket_board": "Service Desk",
                         "notification_sender": "ann@example.com"},
        "users": [{"upn": "ann@example.com", "display_name": "Ann Lee"}, {"upn": "bob@example.com", "display_name": "Bob Day"}],
        "groups": groups,
        "sim": {"page_size": 2}
    });
    let sim = TestSim::start(Fixture::from_json(&fixture.to_string()).unwrap()).await;
    let mut url = sim.url("/v1.0/users/ann@example.com/transitiveMemberOf/microsoft.graph.group?$select=id,displayName,mail");
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let answer = sim
            .graph(
                Method::GET,
                url.strip_prefix(&sim.handle.base_url).unwrap(),
                None,
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        pages += 1;
        for group in answer.values() {
            assert_eq!(group["@odata.type"], "#microsoft.graph.group");
            assert!(group["id"].as_str().unwrap().len() == 36);
            names.push(group["displayName"].as_str().unwrap().to_string());
        }
        match answer.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with("http://") && next.contains("$skiptoken="),
                    "{next}"
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        ["Group 1", "Group 2", "Group 3", "Group 4", "Group 5"]
    );
    assert_eq!(sim.requests("graph GET transitiveMemberOf"), 3);

    let none = sim
        .graph_get("/v1.0/users/bob@example.com/transitiveMemberOf/microsoft.graph.group")
        .await;
    assert_eq!(none.values().len(), 0);
    let unknown = sim
        .graph_get("/v1.0/users/nobody@example.com/transitiveMemberOf/microsoft.graph.group")
        .await;
    assert_eq!(unknown.status, 404);
}

fn john_entry(list: &Value, address: &str) -> Option<Value> {
    list["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["emailAddress"]["address"] == address)
        .cloned()
}

#[tokio::test]
async fn calendar_permissions_list_delete_restore() {
    let sim = TestSim::acme().await;
    let path = "/v1.0/users/ceo@acmecorp.com/calendar/calendarPermissions";
    let initial = sim.mailbox_state("ceo@acmecorp.com");
    let list = sim.graph_get(path).await;
    assert_eq!(list.status, 200);
    let default = &list.values()[0];
    assert_eq!(default["id"], "RGVmYXVsdA==");
    assert_eq!(default["isRemovable"], false);
    assert_eq!(default["emailAddress"], json!({"name": "My Organization"}));
    let john = john_entry(&list.body, "john.smith@acmecorp.com").expect("John's permission");
    assert_eq!(john["role"], "delegateWithoutPrivateEventAccess");
    assert_eq!(john["isRemovable"], true);
    assert_eq!(john["emailAddress"]["name"], "John Smith");
    let jane = john_entry(&list.body, "jane.doe@acmecorp.com").expect("Jane's permission");
    assert_eq!(jane["role"], "read");

    let id = john["id"].as_str().unwrap();
    let delete_path = format!("{path}/{}", urlencoding::encode(id));
    let deleted = sim.graph(Method::DELETE, &delete_path, None).await;
    assert_eq!(deleted.status, 204);
    assert!(john_entry(&sim.graph_get(path).await.body, "john.smith@acmecorp.com").is_none());
    let again = sim.graph(Method::DELETE, &delete_path, None).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.body["error"]["code"], "ErrorItemNotFound");

    let bad_role = r#"{"emailAddress":{"address":"john.smith@acmecorp.com"},"role":"owner"}"#;
    assert_eq!(
        sim.graph(Method::POST, path, Some(bad_role)).await.status,
        400
    );
    let restore = r#"{"emailAddress":{"name":"John Smith","address":"john.smith@acmecorp.com"},"isInsideOrganization":true,"isRemovable":true,"role":"delegateWithoutPrivateEventAccess"}"#;
    let created = sim.graph(Method::POST, path, Some(restore)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["id"], id);
    assert_eq!(created.body["role"], "delegateWithoutPrivateEventAccess");
    assert_eq!(sim.mailbox_state("ceo@acmecorp.com"), initial);

    let counts = [
        "graph GET calendarPermissions",
        "graph DELETE calendarPermissions",
        "graph POST calendarPermissions",
    ];
    let counted: Vec<u64> = counts.iter().map(|k| sim.requests(k)).collect();
    assert_eq!(counted, [2, 2, 2]);
}

#[tokio::test]
async fn calendar_roles_and_unknown_mailbox() {
    let sim = TestSim::hard().await;
    let cfo = sim
        .graph_get("/v1.0/users/cfo@globexcorp.com/calendar/calendarPermissions")
        .await;
    assert_eq!(
        john_entry(&cfo.body, "john.smith@globexcorp.com").unwrap()["role"],
        "read"
    );
    let hr = sim
        .graph_get("/v1.0/users/hr@globexcorp.com/calendar/calendarPermissions")
        .await;
    assert!(
        john_entry(&hr.body, "john.smith@globexcorp.com").is_none(),
        "only the lookalike is on hr@"
    );
    assert_eq!(
        john_entry(&hr.body, "john.smith2@globexcorp.com").unwrap()["role"],
        "write"
    );
    let unknown = sim
        .graph_get("/v1.0/users/nobody@globexcorp.com/calendar/calendarPermissions")
        .await;
    assert_eq!(unknown.status, 404);
}

const MAIL: &str = r##"{"message":{"subject":"Revoke365: access removed for john.smith@acmecorp.com",
  "body":{"contentType":"HTML","content":"<p>Done</p>"},
  "toRecipients":[{"emailAddress":{"address":"secops@msp.example"}}],
  "attachments":[{"@odata.type":"#microsoft.graph.fileAttachment","name":"report.txt","contentType":"text/plain","contentBytes":"UmVwb3J0OiBhbGwgY2xlYXI="}]},
  "saveToSentItems":true}"##;

#[tokio::test]
async fn send_mail_is_validated_and_stored() {
    let sim = TestSim::acme().await;
    let path = "/v1.0/users/automation@acmecorp.com/sendMail";
    let sent = sim.graph(Method::POST, path, Some(MAIL)).await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let state = sim.state();
    let mail = &state["sent_mail"][0];
    assert_eq!(mail["from"], "automation@acmecorp.com");
    assert_eq!(mail["content_type"], "HTML");
    assert_eq!(mail["to"], json!(["secops@msp.example"]));
    assert_eq!(mail["attachments"][0]["name"], "report.txt");
    assert_eq!(mail["attachments"][0]["content"], "Report: all clear");

    let broken = [
        MAIL.replace(
            r#""toRecipients":[{"emailAddress":{"address":"secops@msp.example"}}]"#,
            r#""toRecipients":[]"#,
        ),
        MAIL.replace(r#""contentType":"HTML""#, r#""contentType":"Markdown""#),
        MAIL.replace("UmVwb3J0OiBhbGwgY2xlYXI=", "not base64!"),
        MAIL.replace(
            "#microsoft.graph.fileAttachment",
            "#microsoft.graph.itemAttachment",
        ),
        MAIL.replace(r#""subject":"#, r#""topic":"#),
        "{not json".to_string(),
    ];
    for body in &broken {
        let answer = sim.graph(Method::POST, path, Some(body)).await;
        assert_eq!(answer.status, 400, "{body}");
        assert!(answer.body["error"]["code"].is_string());
    }
    let unknown = sim
        .graph(
            Method::POST,
            "/v1.0/users/nobody@acmecorp.com/sendMail",
            Some(MAIL),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(sim.state()["sent_mail"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn graph_batch_runs_every_step() {
    let sim = TestSim::acme().await;
    let body = r#"{"requests":[
        {"id":"1","method":"GET","url":"/users/john.smith@acmecorp.com?$select=id,displayName"},
        {"id":"2","method":"GET","url":"/users/nobody@acmecorp.com"},
        {"id":"3","method":"GET","url":"/users/ceo@acmecorp.com/calendar/calendarPermissions"}]}"#;
    let answer = sim.graph(Method::POST, "/v1.0/$batch", Some(body)).await;
    assert_eq!(answer.status, 200);
    let responses = answer.body["responses"].as_array().unwrap();
    let statuses: Vec<(&str, u64)> = responses
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(statuses, [("1", 200), ("2", 404), ("3", 200)]);
    assert_eq!(responses[0]["body"]["displayName"], "John Smith");
    assert_eq!(sim.requests("graph GET /users/{id}"), 2);
    assert_eq!(sim.requests("graph POST $batch"), 1);
}
