//! Exchange error answers: `details[].message` is `<code>|<ExceptionType>|<text>`;
//! cmdlet failures are HTTP 500, binding and request errors HTTP 400.

use serde_json::json;

use crate::common::{fixture, Answer, TestSim, ACME, HARD};

fn cmdlet(name: &str, parameters: serde_json::Value) -> String {
    json!({"CmdletInput": {"CmdletName": name, "Parameters": parameters}}).to_string()
}

/// Split `details[0].message` into (code, exception type, text).
fn parts(answer: &Answer) -> (String, String, String) {
    let detail = answer.exo_detail();
    let mut split = detail.splitn(3, '|');
    let code = split.next().unwrap_or_default().to_string();
    let kind = split.next().unwrap_or_default().to_string();
    let text = split.next().unwrap_or_default().to_string();
    assert!(
        code.len() == 8
            && code.starts_with("Ex")
            && code[2..].chars().all(|c| c.is_ascii_hexdigit()),
        "code of {detail}"
    );
    (code, kind, text)
}

#[tokio::test]
async fn not_found_is_a_500_with_the_real_exception() {
    let sim = TestSim::acme().await;
    let answer = sim
        .exo(&cmdlet(
            "Get-MailboxPermission",
            json!({"Identity": "nobody@acmecorp.com"}),
        ))
        .await;
    assert_eq!(answer.status, 500);
    let error = &answer.body["error"];
    assert_eq!(error["code"], "InternalServerError");
    assert_eq!(error["message"], "Error executing cmdlet");
    let (code, kind, text) = parts(&answer);
    assert_eq!(code, "Ex6F9304");
    assert_eq!(
        kind,
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    );
    assert!(
        text.starts_with("The operation couldn't be performed because object 'nobody@acmecorp.com' couldn't be found on '"),
        "{text}"
    );
    assert_eq!(
        error["innererror"]["internalException"]["message"],
        text.as_str()
    );
    assert_eq!(
        error["innererror"]["internalException"]["type"],
        kind.as_str()
    );
}

#[tokio::test]
async fn each_failure_kind_has_its_type_status_and_stable_code() {
    let mut tenant = fixture(HARD);
    tenant.sim.unreadable_mailboxes = vec!["cfo@globexcorp.com".into()];
    let sim = TestSim::start(tenant).await;
    let cases = [
        (
            cmdlet("Get-Recipient", json!({"Identity": "John Smith"})),
            500,
            "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException",
            "matches multiple entries",
        ),
        (
            cmdlet(
                "Remove-MailboxPermission",
                json!({"Identity": "legal@globexcorp.com", "User": "john.smith@globexcorp.com", "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}),
            ),
            500,
            "Microsoft.Exchange.Configuration.Tasks.TaskAccessDeniedException",
            "Access to mailbox 'legal@globexcorp.com' is denied.",
        ),
        (
            cmdlet(
                "Get-MailboxPermission",
                json!({"Identity": "cfo@globexcorp.com"}),
            ),
            500,
            "Microsoft.Exchange.Data.StoragePermanentException",
            "denied",
        ),
        (
            cmdlet("Get-Mailbox", json!({"Idnetity": "x"})),
            400,
            "System.Management.Automation.ParameterBindingException",
            "Idnetity",
        ),
        (
            cmdlet("Get-Mailbux", json!({})),
            400,
            "System.Management.Automation.CommandNotFoundException",
            "Get-Mailbux",
        ),
        (
            "{not json".to_string(),
            400,
            "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
            "CmdletInput",
        ),
    ];
    let mut codes = std::collections::BTreeMap::new();
    for (body, status, exception, text) in cases {
        let answer = sim.exo(&body).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        let expected = if status == 500 {
            "InternalServerError"
        } else {
            "BadRequest"
        };
        assert_eq!(answer.body["error"]["code"], expected, "{body}");
        let (code, kind, message) = parts(&answer);
        assert_eq!(kind, exception, "{body}");
        assert!(message.contains(text), "{body}: {message}");
        // The same type gives the same code, every time.
        let again = parts(&sim.exo(&body).await).0;
        assert_eq!(code, again);
        codes.insert(kind, code);
    }
    let distinct: std::collections::BTreeSet<&String> = codes.values().collect();
    assert_eq!(distinct.len(), codes.len(), "one code per type: {codes:?}");
}

#[tokio::test]
async fn remove_with_unknown_user_is_not_found() {
    let sim = TestSim::start(fixture(ACME)).await;
    let answer = sim
        .exo(&cmdlet(
            "Remove-RecipientPermission",
            json!({"Identity": "info@acmecorp.com", "Trustee": "ghost@acmecorp.com", "AccessRights": ["SendAs"], "Confirm": false}),
        ))
        .await;
    assert_eq!(answer.status, 500);
    let (code, kind, _) = parts(&answer);
    assert_eq!(code, "Ex6F9304");
    assert!(kind.ends_with("ManagementObjectNotFoundException"));
}
