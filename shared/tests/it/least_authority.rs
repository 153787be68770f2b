//! Least authority: who may start a run, for which company, and where its report goes. The
//! template's policies are checked on the template (LocalStack enforces neither IAM nor
//! resource policies); the routing, the allow-list, the HMAC route and the mail rules are
//! checked on the real handlers and the simulator.

use revoke365::steps::{intake_as, IntakeError};
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture};
use serde_json::{json, Value};

const JOHN: &str = "john.smith@acmecorp.com";

fn acme_with(organization: Value) -> Value {
    let mut f = fixture("acme-tenant.json");
    for (k, v) in organization.as_object().unwrap() {
        f["organization"][k] = v.clone();
    }
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requestor_outside_the_allowed_domains_receives_nothing_while_the_org_recipients_do() {
    let h = Harness::start(
        acme_with(json!({"report_domains": ["msp.example"]})),
        fast_http(8),
    )
    .await;
    let report = h
        .report(json!({"user_email": JOHN, "company_id": "acme", "requested_by": "attacker@elsewhere.example"}))
        .await;
    let snap = h.snapshot();
    assert!(snap.mail_to("attacker@elsewhere.example").is_empty());
    assert_eq!(snap.mail_to("secops@msp.example").len(), 1);
    assert_eq!(report.not_mailed, vec!["attacker@elsewhere.example"]);
    // Said in the report that went out, and not counted as a failure.
    assert!(snap.mail_to("secops@msp.example")[0]
        .body
        .contains("attacker@elsewhere.example"));
    assert!(report.success, "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requestor_of_an_allowed_domain_gets_the_report_with_the_principal_beside_their_name() {
    let h = Harness::start(
        acme_with(json!({"report_domains": ["msp.example"]})),
        fast_http(8),
    )
    .await;
    let body =
        json!({"user_email": JOHN, "company_id": "acme", "requested_by": "tech@msp.example"});
    let accepted = intake_as(
        h.store.as_ref(),
        h.engine.queue.as_ref(),
        Some("os-user:tech"),
        &body,
        None,
    )
    .await
    .unwrap();
    h.engine.run_until_idle().await;
    let snap = h.snapshot();
    let mail = snap.mail_to("tech@msp.example");
    assert_eq!(mail.len(), 1);
    assert!(mail[0].body.contains("os-user:tech"), "{}", mail[0].body);
    let run = revoke365::ports::RunRecords::get_run(h.store.as_ref(), &accepted.run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.requested_by_principal(), Some("os-user:tech"));
    let report = run.result.unwrap();
    let notes = snap.notes_of(report.ticket_id.as_deref().unwrap());
    assert!(
        notes.iter().any(|n| n.text.contains("os-user:tech")),
        "{notes:?}"
    );
    assert!(report.not_mailed.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_mails_no_one_and_with_notify_only_the_allowed() {
    let h = Harness::start(acme_with(json!({})), fast_http(8)).await;
    h.report(json!({"user_email": JOHN, "company_id": "acme", "dry_run": true, "requested_by": "hr@acmecorp.com"}))
        .await;
    assert!(h.snapshot().sent_mail.is_empty());
    let report = h
        .report(
            json!({"user_email": JOHN, "company_id": "acme", "dry_run": true, "notify": true,
            "requested_by": "someone@elsewhere.example"}),
        )
        .await;
    let snap = h.snapshot();
    assert_eq!(snap.sent_mail.len(), 1);
    assert_eq!(snap.sent_mail[0].to, vec!["secops@msp.example"]);
    assert_eq!(report.not_mailed, vec!["someone@elsewhere.example"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_principal_not_on_the_company_list_is_refused_before_anything_is_made() {
    let h = Harness::start(
        acme_with(json!({"allowed_principals": ["os-user:tech", "arn:aws:iam::111122223333:role/Helpdesk"]})),
        fast_http(8),
    )
    .await;
    let body = json!({"user_email": JOHN, "company_id": "acme", "dry_run": true});
    let refused = intake_as(
        h.store.as_ref(),
        h.engine.queue.as_ref(),
        Some("os-user:mallory"),
        &body,
        None,
    )
    .await;
    assert!(
        matches!(&refused, Err(IntakeError::Refused(r)) if r.principal == "os-user:mallory"),
        "{refused:?}"
    );
    assert!(h.engine.queue.drain().await.is_empty(), "nothing queued");
    // The refusal reserved nothing: the same request by an allowed role's session is new.
    let accepted = intake_as(
        h.store.as_ref(),
        h.engine.queue.as_ref(),
        Some("arn:aws:sts::111122223333:assumed-role/Helpdesk/alice"),
        &body,
        None,
    )
    .await
    .unwrap();
    assert!(accepted.created);
}

#[tokio::test]
async fn a_request_cannot_name_its_own_principal() {
    let h = Harness::start(acme_with(json!({})), fast_http(8)).await;
    let e = intake_as(
        h.store.as_ref(),
        h.engine.queue.as_ref(),
        None,
        &json!({"user_email": JOHN, "company_id": "acme", "requested_by_principal": "arn:aws:iam::1:root"}),
        None,
    )
    .await;
    assert!(matches!(e, Err(IntakeError::Invalid(i)) if i.field == "requested_by_principal"));
}

/// The template, parsed: `!Ref X` becomes `{"!Ref": X}` and so on for every tag.
pub(crate) mod template {
    use serde_json::{json, Value};

    pub fn load() -> Value {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        )
        .unwrap();
        untag(serde_yaml::from_str(&text).unwrap())
    }

    fn untag(v: serde_yaml::Value) -> Value {
        use serde_yaml::Value as Y;
        match v {
            Y::Null => Value::Null,
            Y::Bool(b) => json!(b),
            Y::Number(n) => serde_json::to_value(n).unwrap(),
            Y::String(s) => json!(s),
            Y::Sequence(items) => Value::Array(items.into_iter().map(untag).collect()),
            Y::Mapping(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| (k.as_str().unwrap().to_string(), untag(v)))
                    .collect(),
            ),
            Y::Tagged(t) => json!({ t.tag.to_string(): untag(t.value) }),
        }
    }

    pub fn statements(policy: &Value) -> Vec<&Value> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            // `!If [condition, statement, !Ref AWS::NoValue]`
            .map(|s| s.get("!If").map(|i| &i[1]).unwrap_or(s))
            .collect()
    }

    pub fn by_sid<'a>(policy: &'a Value, sid: &str) -> &'a Value {
        statements(policy)
            .into_iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }

    pub fn actions(statement: &Value) -> Vec<String> {
        match &statement["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            other => panic!("Action {other}"),
        }
    }
}

#[test]
fn security_alerts_come_only_through_the_dedicated_bus_and_its_policy() {
    let t = template::load();
    let r = &t["Resources"];
    assert_eq!(r["AlertBus"]["Type"], "AWS::Events::EventBus");
    assert_eq!(
        r["SecurityAlertRule"]["Properties"]["EventBusName"],
        json!({"!Ref": "AlertBus"})
    );
    let policy = &r["AlertBusPolicy"];
    assert_eq!(policy["Condition"], "HasAlertSenders");
    assert_eq!(
        policy["Properties"]["EventBusName"],
        json!({"!Ref": "AlertBus"})
    );
    let s = &policy["Properties"]["Statement"];
    assert_eq!(s["Action"], "events:PutEvents");
    assert_eq!(
        s["Principal"]["AWS"],
        json!({"!Ref": "AlertSenderAccounts"})
    );
    assert_eq!(s["Resource"], json!({"!GetAtt": "AlertBus.Arn"}));
}

#[test]
fn only_this_account_and_the_named_senders_may_send_to_the_offboarding_queue() {
    let t = template::load();
    let policy = &t["Resources"]["OffboardingQueuePolicy"]["Properties"];
    assert_eq!(policy["Queues"], json!([{"!Ref": "OffboardingQueue"}]));
    let doc = &policy["PolicyDocument"];
    let other_accounts = template::by_sid(doc, "DenyOtherAccounts");
    assert_eq!(other_accounts["Effect"], "Deny");
    assert_eq!(
        other_accounts["Condition"]["StringNotEquals"]["aws:PrincipalAccount"],
        json!({"!Ref": "AWS::AccountId"})
    );
    let only = template::by_sid(doc, "OnlyAllowedSenders");
    assert_eq!(
        (only["Effect"].as_str(), template::actions(only)),
        (Some("Deny"), vec!["sqs:SendMessage".to_string()])
    );
    assert_eq!(
        only["Condition"]["ArnNotLike"]["aws:PrincipalArn"],
        json!({"!Ref": "OffboardingSenderArns"})
    );
    assert_eq!(
        template::by_sid(doc, "DenyWithoutTls")["Condition"]["Bool"]["aws:SecureTransport"],
        "false"
    );
    for s in template::statements(doc) {
        assert!(
            s["Effect"] == "Deny" || s["Principal"] != "*",
            "no statement allows everyone: {s}"
        );
    }
}

#[test]
fn the_data_key_decrypts_only_for_the_functions_roles_and_encrypts_the_secrets_and_run_tables() {
    let t = template::load();
    let r = &t["Resources"];
    let key = &r["DataKey"]["Properties"];
    assert_eq!(key["EnableKeyRotation"], true);
    let policy = &key["KeyPolicy"];
    // A named key-admin role administers the key, without kms:Put* or kms:Create*
    // (template_trust checks who may change the policy or grant).
    let admin = template::by_sid(policy, "KeyAdministration");
    assert!(template::actions(admin).contains(&"kms:EnableKeyRotation".to_string()));
    let role_path = json!({"!Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/revoke365/${AWS::StackName}/*"});
    for s in template::statements(policy) {
        assert_ne!(s["Principal"], "*", "{s}");
        let decrypts = template::actions(s)
            .iter()
            .any(|a| a == "kms:Decrypt" || a == "kms:*" || a == "kms:ReEncrypt*");
        if decrypts {
            assert_eq!(
                s["Condition"]["ArnLike"]["aws:PrincipalArn"], role_path,
                "{s}"
            );
        }
    }
    for role in [
        "IntakeRole",
        "DiscoveryRole",
        "RemovalRole",
        "VerificationRole",
    ] {
        assert_eq!(
            r[role]["Properties"]["Path"],
            json!({"!Sub": "/revoke365/${AWS::StackName}/"}),
            "{role}"
        );
    }
    for table in ["RunsTable", "AuditTable"] {
        let sse = &r[table]["Properties"]["SSESpecification"];
        assert_eq!(
            (&sse["SSEEnabled"], &sse["SSEType"], &sse["KMSMasterKeyId"]),
            (&json!(true), &json!("KMS"), &json!({"!Ref": "DataKey"})),
            "{table}"
        );
    }
    for secret in ["CredentialsSecret", "WebhookSecret"] {
        assert_eq!(
            r[secret]["Properties"]["KmsKeyId"],
            json!({"!Ref": "DataKey"}),
            "{secret}"
        );
    }
}

#[test]
fn the_api_is_iam_authorized_except_the_one_signed_route_and_every_scanner_finding_is_justified() {
    let t = template::load();
    let r = t["Resources"].as_object().unwrap();
    assert_eq!(
        r["RevocationsApi"]["Properties"]["Auth"]["DefaultAuthorizer"],
        "AWS_IAM"
    );
    let events = r["IntakeFunction"]["Properties"]["Events"]
        .as_object()
        .unwrap();
    let unauthorized: Vec<&String> = events
        .iter()
        .filter(|(_, e)| e["Type"] == "HttpApi" && !e["Properties"]["Auth"].is_null())
        .map(|(name, _)| name)
        .collect();
    assert_eq!(unauthorized, vec!["PostSignedRevocation"]);
    assert_eq!(
        events["PostSignedRevocation"]["Properties"]["Path"],
        "/hooks/revocations"
    );
    for (name, resource) in r {
        for skip in resource["Metadata"]["checkov"]["skip"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let comment = skip["comment"].as_str().unwrap_or("");
            assert!(
                comment.len() > 20 && !comment.contains('\n'),
                "{name}: {} needs a one-line reason",
                skip["id"]
            );
        }
    }
}

#[cfg(feature = "aws")]
mod aws {
    use crate::aws_kit::{Env, JOHN};
    use revoke365::adapters::aws::resources::resources;
    use revoke365::lambda::intake::handle_intake_event;
    use revoke365::lambda::webhook;
    use revoke365::model::OrgSettings;
    use revoke365_testkit::{events_dir, fixture};
    use serde_json::{json, Value};
    use std::time::Duration;

    const HELPDESK: &str = "arn:aws:sts::123456789012:assumed-role/Helpdesk/alice";
    const OUTSIDER: &str = "arn:aws:sts::123456789012:assumed-role/OtherCustomer/bob";

    /// Acme lets the Helpdesk role, the `sentinel` webhook caller and the security source
    /// of the emulators' account act for it; a second company exists beside it.
    async fn env_with_allow_list() -> Env {
        let env = Env::start(fixture("acme-tenant.json"), 10).await;
        let mut acme = OrgSettings::from_fixture(&fixture("acme-tenant.json")).unwrap();
        acme.allowed_principals = vec![
            "arn:aws:iam::123456789012:role/Helpdesk".into(),
            "hmac:sentinel".into(),
            "events:000000000000:revoke365.security".into(),
        ];
        env.intake.store.put_org_settings(&acme).await.unwrap();
        let mut globex = acme.clone();
        globex.company_id = "globex".into();
        globex.company_name = "Globex".into();
        globex.allowed_principals = vec![OUTSIDER.into()];
        env.intake.store.put_org_settings(&globex).await.unwrap();
        env
    }

    /// An HTTP API event as API Gateway sends it, signed by `principal`.
    fn api_event(
        method: &str,
        path: &str,
        body: Option<&str>,
        principal: &str,
        headers: &[(&str, String)],
    ) -> Value {
        let mut event: Value = serde_json::from_str(
            &std::fs::read_to_string(events_dir().join("apigw-post-revocation.json")).unwrap(),
        )
        .unwrap();
        crate::aws_kit::route_event(&mut event, method, path);
        event["rawQueryString"] = json!("");
        event["queryStringParameters"] = Value::Null;
        event["requestContext"]["authorizer"]["iam"]["userArn"] = json!(principal);
        event["body"] = body.map(|b| json!(b)).unwrap_or(Value::Null);
        event["isBase64Encoded"] = json!(false);
        let h = event["headers"].as_object_mut().unwrap();
        h.remove("idempotency-key");
        for (k, v) in headers {
            h.insert(k.to_string(), json!(v));
        }
        event
    }

    async fn call(env: &Env, event: Value) -> (i64, Value) {
        let response = handle_intake_event(&env.intake, event).await.unwrap();
        let body = serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap();
        (response["statusCode"].as_i64().unwrap(), body)
    }

    async fn cancel_requested(env: &Env, run_id: &str) -> bool {
        let id = revoke365::model::RunId(run_id.into());
        revoke365::ports::RunRecords::get_run(&env.intake.store, &id)
            .await
            .unwrap()
            .unwrap()
            .cancel_requested
    }

    fn acme_request() -> String {
        json!({"user_email": JOHN, "company_id": "acme", "dry_run": true}).to_string()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_principal_not_allowed_for_the_company_is_refused_with_no_run_created() {
        let env = env_with_allow_list().await;
        let req = acme_request();
        let (status, body) = call(
            &env,
            api_event("POST", "/revocations", Some(&req), OUTSIDER, &[]),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
        assert_eq!(env.run_count().await, 0);

        // The queue path: the emulator's sender is not on Acme's list.
        env.sqs
            .send_message()
            .queue_url(&env.offboarding_url)
            .message_body(&req)
            .send()
            .await
            .unwrap();
        let (event, _) = env.receive(&env.offboarding_url).await.unwrap();
        let sender = event.records[0].attributes["SenderId"].clone();
        let response =
            revoke365::lambda::intake::handle_offboarding_queue(&env.intake, event).await;
        assert_eq!(
            response.batch_item_failures.len(),
            1,
            "sender {sender} refused"
        );
        assert_eq!(env.run_count().await, 0);

        // An allowed role's session may start it and read it; the other company's may not read it.
        let (status, accepted) = call(
            &env,
            api_event("POST", "/revocations", Some(&req), HELPDESK, &[]),
        )
        .await;
        assert_eq!(status, 202, "{accepted}");
        let path = format!("/revocations/{}", accepted["run_id"].as_str().unwrap());
        let (status, _) = call(&env, api_event("GET", &path, None, HELPDESK, &[])).await;
        assert_eq!(status, 200);
        let (status, body) = call(&env, api_event("GET", &path, None, OUTSIDER, &[])).await;
        assert_eq!(status, 403, "{body}");
        assert!(!body.to_string().contains("acme"), "{body}");
        // Nor cancel it: the run goes on as it was.
        let cancel = format!("{path}/cancel");
        let (status, body) = call(&env, api_event("POST", &cancel, None, OUTSIDER, &[])).await;
        assert_eq!(status, 403, "{body}");
        let run_id = accepted["run_id"].as_str().unwrap();
        assert!(!cancel_requested(&env, run_id).await);
        let (status, body) = call(&env, api_event("POST", &cancel, None, HELPDESK, &[])).await;
        assert_eq!(status, 202, "{body}");
        assert!(cancel_requested(&env, run_id).await);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn no_error_body_lists_another_company() {
        let env = env_with_allow_list().await;
        let unknown = json!({"user_email": JOHN, "company_id": "initech"}).to_string();
        let (status, body) = call(
            &env,
            api_event("POST", "/revocations", Some(&unknown), HELPDESK, &[]),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["field"], "company_id");
        let (_, refused) = call(
            &env,
            api_event("POST", "/revocations", Some(&acme_request()), OUTSIDER, &[]),
        )
        .await;
        let (_, missing) = call(
            &env,
            api_event("GET", "/revocations/nope", None, OUTSIDER, &[]),
        )
        .await;
        for b in [body, refused, missing] {
            let text = b.to_string().to_lowercase();
            assert!(!text.contains("globex") && !text.contains("acme"), "{text}");
        }
    }

    fn signed_headers(secret: &str, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
        vec![
            (webhook::CALLER_HEADER, "sentinel".into()),
            (webhook::TIMESTAMP_HEADER, timestamp.to_string()),
            (
                webhook::SIGNATURE_HEADER,
                webhook::sign(secret, timestamp, body.as_bytes()),
            ),
        ]
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_signed_route_takes_a_good_signature_once_and_refuses_bad_stale_and_replayed_ones()
    {
        let env = env_with_allow_list().await;
        env.sm
            .put_secret_value()
            .secret_id(&env.names.webhook_secret_id)
            .secret_string(json!({"sentinel": "s3cret-of-sentinel"}).to_string())
            .send()
            .await
            .unwrap();
        let body =
            json!({"user_email": JOHN, "company_id": "acme", "requested_by": "secops@msp.example"})
                .to_string();
        let now = chrono::Utc::now().timestamp();
        // No SigV4 principal reaches this route: API Gateway sends no IAM context.
        let unsigned = |headers: &[(&str, String)]| {
            let mut e = api_event("POST", "/hooks/revocations", Some(&body), "", headers);
            e["requestContext"]["authorizer"] = Value::Null;
            e
        };
        let (status, _) = call(&env, unsigned(&signed_headers("wrong-secret", now, &body))).await;
        assert_eq!(status, 401);
        let (status, _) = call(
            &env,
            unsigned(&signed_headers("s3cret-of-sentinel", now - 3600, &body)),
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = call(&env, unsigned(&[])).await;
        assert_eq!(status, 401);
        assert_eq!(env.run_count().await, 0);

        let good = signed_headers("s3cret-of-sentinel", now, &body);
        let (status, accepted) = call(&env, unsigned(&good)).await;
        assert_eq!(status, 202, "{accepted}");
        let (status, replay) = call(&env, unsigned(&good)).await;
        assert_eq!(status, 409, "{replay}");
        assert_eq!(env.run_count().await, 1);

        // The caller is recorded on the run, in every audit record, the note and the email.
        let run_id = accepted["run_id"].as_str().unwrap();
        env.pump_steps(1).await;
        let audit = env
            .ddb
            .query()
            .table_name(&env.names.audit_table)
            .key_condition_expression("run_id = :r")
            .expression_attribute_values(
                ":r",
                aws_sdk_dynamodb::types::AttributeValue::S(run_id.into()),
            )
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        assert!(!audit.is_empty());
        for row in &audit {
            let record = row.get("record").and_then(|r| r.as_m().ok()).unwrap_or(row);
            assert_eq!(
                record
                    .get("requested_by_principal")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str),
                Some("hmac:sentinel"),
                "{row:?}"
            );
        }
        let snap = env.sim.snapshot();
        assert!(snap.mail_to("secops@msp.example")[0]
            .body
            .contains("hmac:sentinel"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_event_on_the_default_bus_starts_nothing_and_one_on_the_alert_bus_does() {
        let env = env_with_allow_list().await;
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let events = aws_sdk_eventbridge::Client::new(&config);
        let r = resources();
        let prefix = env
            .names
            .runs_table
            .strip_suffix(&r.tables.runs.name)
            .unwrap()
            .to_string();
        let bus = format!("{prefix}{}", r.alert_bus.name);
        let delivery = env
            .sqs
            .get_queue_url()
            .queue_name(format!("{prefix}{}", r.alert_bus.delivery_queue))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let detail = json!({"user_email": JOHN, "company_id": "acme", "incident_id": "INC-7", "severity": "high", "dry_run": true});
        let entry = |bus: &str, source: &str| {
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(bus)
                .source(source)
                .detail_type(&r.security_alert_rule.detail_type)
                .detail(detail.to_string())
                .build()
        };
        let put = events
            .put_events()
            .entries(entry("default", &r.security_alert_rule.source))
            .entries(entry(&bus, "someone.else"))
            .entries(entry(&bus, &r.security_alert_rule.source))
            .send()
            .await
            .unwrap();
        assert_eq!(put.failed_entry_count, 0);

        // Play the rule's Lambda target: hand each delivered event to the intake handler.
        let mut delivered = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let out = env
                .sqs
                .receive_message()
                .queue_url(&delivery)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for m in out.messages.unwrap_or_default() {
                delivered.push(serde_json::from_str::<Value>(m.body.as_deref().unwrap()).unwrap());
            }
            if !delivered.is_empty() {
                // Give a wrongly routed second event the chance to arrive too.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let out = env
                    .sqs
                    .receive_message()
                    .queue_url(&delivery)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .unwrap();
                for m in out.messages.unwrap_or_default() {
                    delivered
                        .push(serde_json::from_str::<Value>(m.body.as_deref().unwrap()).unwrap());
                }
                break;
            }
        }
        assert_eq!(delivered.len(), 1, "{delivered:?}");
        assert_eq!(
            delivered[0]["source"],
            r.security_alert_rule.source.as_str()
        );
        let started = handle_intake_event(&env.intake, delivered[0].clone())
            .await
            .unwrap();
        assert_eq!(env.run_count().await, 1);
        let run_id = started["run_id"].as_str().unwrap();
        let (_, run) = call(
            &env,
            api_event(
                "GET",
                &format!("/revocations/{run_id}"),
                None,
                HELPDESK,
                &[],
            ),
        )
        .await;
        assert_eq!(run["status"], "accepted", "{run}");
        let stored = revoke365::ports::RunRecords::get_run(
            &env.intake.store,
            &revoke365::model::RunId(run_id.into()),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            stored.requested_by_principal(),
            Some(
                format!(
                    "events:{}:revoke365.security",
                    delivered[0]["account"].as_str().unwrap()
                )
                .as_str()
            )
        );
    }
}

#[test]
fn the_roles_may_read_what_history_audit_and_restore_read_and_no_more() {
    let t = template::load();
    let r = &t["Resources"];
    let policy = |role: &str| &r[role]["Properties"]["Policies"][0]["PolicyDocument"];
    let audit = json!({"!GetAtt": "AuditTable.Arn"});
    // The audit route (intake) and a restore's planning (discovery) read audit trails; only
    // removal and verification append to them.
    for role in ["IntakeRole", "DiscoveryRole"] {
        let read = template::by_sid(policy(role), "AuditRead");
        assert_eq!(read["Resource"], audit, "{role}");
        assert_eq!(
            template::actions(read),
            ["dynamodb:GetItem", "dynamodb:Query"],
            "{role}"
        );
    }
    // Run history: intake answers GET /revocations, discovery finds later runs of a user.
    let index = json!({"!Sub": "${RunsTable.Arn}/index/runs-by-company"});
    for role in ["IntakeRole", "DiscoveryRole"] {
        let runs = template::by_sid(policy(role), "Runs");
        assert!(
            runs["Resource"].as_array().unwrap().contains(&index),
            "{role}: {runs}"
        );
    }
    // Every route the intake function answers is one the API routes to it.
    let events = r["IntakeFunction"]["Properties"]["Events"]
        .as_object()
        .unwrap();
    let routes: Vec<(String, String)> = events
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let p = &e["Properties"];
            (
                p["Method"].as_str().unwrap().to_string(),
                p["Path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (method, path) in [
        ("POST", "/revocations"),
        ("GET", "/revocations"),
        ("GET", "/revocations/{run_id}"),
        ("GET", "/revocations/{run_id}/audit"),
        ("POST", "/revocations/{run_id}/cancel"),
        ("POST", "/revocations/{run_id}/restore"),
        ("POST", "/hooks/revocations"),
        ("POST", "/alerts/sentinel"),
    ] {
        assert!(
            routes.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is not routed: {routes:?}"
        );
    }
}

/// The audit manifests' seal: an HMAC key no one can export, that only verification may make
/// MACs with and only intake (the audit route) and discovery (a restore's planning) may check
/// them with; the account administers it without a way to use it. Only verification may set
/// a run's `audit_manifest`; the audit table's writers only put.
#[test]
fn the_audit_mac_key_seals_only_in_verification_and_no_other_function_touches_the_manifest() {
    let t = template::load();
    let r = &t["Resources"];
    let key = &r["AuditMacKey"]["Properties"];
    assert_eq!(
        (&key["KeySpec"], &key["KeyUsage"]),
        (&json!("HMAC_256"), &json!("GENERATE_VERIFY_MAC"))
    );
    let role = |name: &str| json!({"!GetAtt": format!("{name}.Arn")});
    let mut users = Vec::new();
    for s in template::statements(&key["KeyPolicy"]) {
        assert_eq!(s["Effect"], "Allow", "{s}");
        let actions = template::actions(s);
        let uses = actions
            .iter()
            .any(|a| a.contains("Mac") || a == "kms:*" || a.starts_with("kms:CreateGrant"));
        if uses {
            assert!(
                s["Principal"]["AWS"]
                    != json!({"!Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}),
                "{s}"
            );
            users.push((actions, s["Principal"]["AWS"].clone()));
        }
    }
    assert_eq!(
        users,
        [
            (
                vec!["kms:GenerateMac".to_string()],
                role("VerificationRole")
            ),
            (
                vec!["kms:VerifyMac".to_string()],
                json!([role("IntakeRole"), role("DiscoveryRole")])
            ),
        ]
    );
    let env =
        |f: &str| r[f]["Properties"]["Environment"]["Variables"]["REVOKE365_AUDIT_KEY_ID"].clone();
    for f in [
        "IntakeFunction",
        "DiscoveryFunction",
        "VerificationFunction",
    ] {
        assert_eq!(env(f), json!({"!Ref": "AuditMacKey"}), "{f}");
    }
    assert_eq!(
        env("RemovalFunction"),
        Value::Null,
        "removal neither seals nor checks"
    );

    let policy = |role: &str| &r[role]["Properties"]["Policies"][0]["PolicyDocument"];
    for name in ["IntakeRole", "DiscoveryRole", "RemovalRole"] {
        let deny = template::by_sid(policy(name), "NoAuditManifest");
        assert_eq!(deny["Effect"], "Deny", "{name}");
        assert_eq!(deny["Resource"], role("RunsTable"), "{name}");
        assert_eq!(
            deny["Condition"]["ForAnyValue:StringEquals"]["dynamodb:Attributes"], "audit_manifest",
            "{name}"
        );
        assert!(
            template::actions(deny).contains(&"dynamodb:UpdateItem".to_string()),
            "{name}"
        );
    }
    for name in [
        "IntakeRole",
        "DiscoveryRole",
        "RemovalRole",
        "VerificationRole",
    ] {
        for s in template::statements(policy(name)) {
            if s["Resource"] == role("AuditTable") && s["Effect"] == "Allow" {
                for a in template::actions(s) {
                    assert!(
                        ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query"]
                            .contains(&a.as_str()),
                        "{name} may {a} on the audit table"
                    );
                }
            }
        }
    }
}
