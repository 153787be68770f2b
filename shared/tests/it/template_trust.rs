//! The template's trust, read from `template.yaml`: who may change and use the data key,
//! who may send to and read the step queues, which routes each example caller policy opens,
//! and where a failed scheduled job ends.

use crate::least_authority::template;
use serde_json::{json, Value};

/// `pattern` (IAM's `*`: any run of characters, `/` included) matches `text`.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|i| glob(rest, &text[head.len() + i..]))
        }
    }
}

/// A `!Sub` execute-api ARN's `METHOD/path` (after the stage).
fn route_of(resource: &Value) -> String {
    let arn = resource["!Sub"].as_str().unwrap();
    let (_, after_api) = arn.split_once("${RevocationsApi}/*/").unwrap();
    after_api.to_string()
}

#[test]
fn no_principal_may_give_itself_decrypt_on_the_data_key() {
    let t = template::load();
    let policy = &t["Resources"]["DataKey"]["Properties"]["KeyPolicy"];
    let root = json!({"!Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"});
    let break_glass = json!({"!Ref": "BreakGlassRoleArn"});
    for s in template::statements(policy) {
        let actions = template::actions(s);
        assert_eq!(s["Effect"], "Allow", "{s}");
        for a in &actions {
            // A wildcard would hide CreateGrant or PutKeyPolicy in it.
            let hides = |action: &str| {
                a.strip_suffix('*')
                    .is_some_and(|prefix| action.starts_with(prefix))
            };
            assert!(
                !hides("kms:CreateGrant") && !hides("kms:PutKeyPolicy"),
                "{a} in {s}"
            );
        }
        if actions.iter().any(|a| a == "kms:CreateGrant") {
            assert_eq!(
                s["Condition"]["Bool"]["kms:GrantIsForAWSResource"], "true",
                "a grant only for an AWS resource: {s}"
            );
        }
        if actions.iter().any(|a| a == "kms:PutKeyPolicy") {
            assert_eq!(s["Principal"]["AWS"], break_glass, "{s}");
            assert_eq!(actions, ["kms:PutKeyPolicy"], "{s}");
        }
        // The account root only where conditions narrow it to the functions' roles or a
        // service.
        if s["Principal"]["AWS"] == root {
            assert!(s["Condition"].is_object(), "root without conditions: {s}");
        }
    }
    let admin = template::by_sid(policy, "KeyAdministration");
    assert_eq!(
        admin["Principal"]["AWS"],
        json!([{"!Ref": "KeyAdminRoleArn"}, {"!Ref": "BreakGlassRoleArn"}])
    );
    let admin_actions = template::actions(admin);
    for never in [
        "kms:Decrypt",
        "kms:CreateGrant",
        "kms:PutKeyPolicy",
        "kms:ReEncryptFrom",
    ] {
        assert!(!admin_actions.iter().any(|a| a == never), "{never}");
    }
    for parameter in ["KeyAdminRoleArn", "BreakGlassRoleArn"] {
        let p = &t["Parameters"][parameter];
        assert!(p["Default"].is_null(), "{parameter} has to be named");
        assert!(p["AllowedPattern"].as_str().unwrap().contains(":role/"));
    }
}

#[test]
fn each_step_queue_takes_messages_only_from_the_roles_that_queue_steps_and_gives_them_only_to_its_function(
) {
    let t = template::load();
    let r = &t["Resources"];
    let roles = [
        "IntakeRole",
        "DiscoveryRole",
        "RemovalRole",
        "VerificationRole",
    ];
    // Who the roles' own policies say sends to and consumes each queue.
    let role_grants = |queue: &str, action: &str| -> Vec<Value> {
        let arn = json!({"!GetAtt": format!("{queue}.Arn")});
        roles
            .iter()
            .filter(|role| {
                let doc = &r[**role]["Properties"]["Policies"][0]["PolicyDocument"];
                template::statements(doc).into_iter().any(|s| {
                    template::actions(s).iter().any(|a| a == action)
                        && (s["Resource"] == arn
                            || s["Resource"].as_array().is_some_and(|a| a.contains(&arn)))
                })
            })
            .map(|role| json!({"!GetAtt": format!("{role}.Arn")}))
            .collect()
    };
    for (queue, consumer) in [
        ("DiscoveryQueue", "DiscoveryRole"),
        ("RemovalQueue", "RemovalRole"),
        ("VerificationQueue", "VerificationRole"),
    ] {
        let policy = &r[format!("{queue}Policy")]["Properties"];
        assert_eq!(policy["Queues"], json!([{"!Ref": queue}]));
        let doc = &policy["PolicyDocument"];
        let senders = role_grants(queue, "sqs:SendMessage");
        assert!(!senders.is_empty(), "{queue}");
        assert_eq!(
            template::by_sid(doc, "StepSenders")["Principal"]["AWS"],
            json!(senders),
            "{queue}"
        );
        let only = template::by_sid(doc, "OnlyStepSenders");
        assert_eq!(
            (only["Effect"].as_str(), only["Principal"].as_str()),
            (Some("Deny"), Some("*"))
        );
        assert_eq!(
            only["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
            json!(senders),
            "{queue}"
        );
        let consumer_arn = json!({"!GetAtt": format!("{consumer}.Arn")});
        assert_eq!(
            role_grants(queue, "sqs:ReceiveMessage"),
            std::slice::from_ref(&consumer_arn)
        );
        assert_eq!(
            template::by_sid(doc, "Consumer")["Principal"]["AWS"],
            consumer_arn
        );
        let only = template::by_sid(doc, "OnlyConsumer");
        assert_eq!(only["Effect"], "Deny");
        assert!(template::actions(only).contains(&"sqs:ReceiveMessage".to_string()));
        assert_eq!(
            only["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
            consumer_arn
        );
        for s in template::statements(doc) {
            assert!(s["Effect"] == "Deny" || s["Principal"] != "*", "{s}");
        }
    }
}

#[test]
fn each_iam_authorized_route_is_in_the_caller_policy_of_its_power_and_no_other() {
    let t = template::load();
    let r = &t["Resources"];
    let policies = [
        "RunsCallerPolicy",
        "RestoreCallerPolicy",
        "AccessCallerPolicy",
    ];
    let patterns = |policy: &str| -> Vec<String> {
        let doc = &r[policy]["Properties"]["PolicyDocument"];
        template::statements(doc)
            .into_iter()
            .flat_map(|s| {
                assert_eq!(template::actions(s), ["execute-api:Invoke"], "{policy}");
                match &s["Resource"] {
                    Value::Array(a) => a.iter().map(route_of).collect::<Vec<_>>(),
                    one => vec![route_of(one)],
                }
            })
            .collect()
    };
    let power_of = |method: &str, path: &str| match (method, path) {
        ("POST", "/revocations/{run_id}/restore") | ("POST", "/backups/restore") => {
            "RestoreCallerPolicy"
        }
        ("GET", "/access") => "AccessCallerPolicy",
        _ => "RunsCallerPolicy",
    };
    let events = r["IntakeFunction"]["Properties"]["Events"]
        .as_object()
        .unwrap();
    let mut routes = 0;
    for e in events.values() {
        if e["Type"] != "HttpApi" || !e["Properties"]["Auth"].is_null() {
            continue;
        }
        let (method, path) = (
            e["Properties"]["Method"].as_str().unwrap(),
            e["Properties"]["Path"].as_str().unwrap(),
        );
        let route = format!("{method}{}", path.replace("{run_id}", "R-1"));
        let opened_by: Vec<&str> = policies
            .into_iter()
            .filter(|p| patterns(p).iter().any(|pat| glob(pat, &route)))
            .collect();
        assert_eq!(opened_by, [power_of(method, path)], "{method} {path}");
        routes += 1;
    }
    assert!(routes >= 9, "{routes} routes");
    for policy in policies {
        let description = r[policy]["Properties"]["Description"].as_str().unwrap();
        assert!(
            description.contains("must also be in the company's"),
            "{policy}"
        );
        let output = &t["Outputs"][format!("{policy}Arn")];
        assert_eq!(output["Value"], json!({"!Ref": policy}));
    }
}

#[test]
fn a_failed_scheduled_job_ends_in_a_queue_and_raises_an_alarm() {
    let t = template::load();
    let r = &t["Resources"];
    let failures = json!({"!GetAtt": "ScheduledJobFailures.Arn"});
    let discovery = &r["DiscoveryFunction"];
    let sweep = &discovery["Properties"]["Events"]["Schedule"]["Properties"];
    assert_eq!(sweep["DeadLetterConfig"]["Arn"], failures);
    assert!(
        sweep["RetryPolicy"]["MaximumRetryAttempts"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let poll = &r["AlertPollSchedule"]["Properties"]["Target"];
    assert_eq!(poll["DeadLetterConfig"]["Arn"], failures);
    // Asynchronous invocations that fail every try: Lambda's on-failure destination, sent
    // with the discovery role.
    let async_config = &r["DiscoveryAsyncConfig"]["Properties"];
    assert_eq!(
        async_config["FunctionName"],
        json!({"!Ref": "DiscoveryFunction"})
    );
    assert_eq!(
        async_config["DestinationConfig"]["OnFailure"]["Destination"],
        failures
    );
    let discovery_role = &r["DiscoveryRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    assert_eq!(
        template::by_sid(discovery_role, "AsyncFailureDestination")["Resource"],
        failures
    );
    // The schedules' roles dead-letter with their own permission; the sweep's rule through the
    // queue's policy, for that rule alone.
    for role in ["AlertPollSchedulerRole", "IndexScheduleRole"] {
        let doc = &r[role]["Properties"]["Policies"][0]["PolicyDocument"];
        assert_eq!(
            template::by_sid(doc, "DeadLetters")["Resource"],
            failures,
            "{role}"
        );
    }
    let queue_policy = &r["ScheduledJobFailuresPolicy"]["Properties"]["PolicyDocument"];
    let events = template::by_sid(queue_policy, "EventBridgeDeadLetters");
    assert_eq!(events["Principal"]["Service"], "events.amazonaws.com");
    assert!(events["Condition"]["ArnEquals"]["aws:SourceArn"]["!Sub"]
        .as_str()
        .unwrap()
        .ends_with(":rule/${NamePrefix}revoke365-schedule"));
    let errors = &r["DiscoveryErrorsAlarm"]["Properties"];
    assert_eq!(
        (&errors["Namespace"], &errors["MetricName"]),
        (&json!("AWS/Lambda"), &json!("Errors"))
    );
    assert_eq!(
        errors["Dimensions"][0]["Value"],
        json!({"!Ref": "DiscoveryFunction"})
    );
    let depth = &r["ScheduledJobFailuresAlarm"]["Properties"];
    assert_eq!(
        depth["Dimensions"][0]["Value"],
        json!({"!GetAtt": "ScheduledJobFailures.QueueName"})
    );
    // The scanner's suppression says what the discovery function really does.
    let skip = discovery["Metadata"]["checkov"]["skip"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "CKV_AWS_116")
        .unwrap();
    let reason = skip["comment"].as_str().unwrap();
    assert!(
        reason.contains("DiscoveryAsyncConfig") && !reason.contains("intake"),
        "{reason}"
    );
}
