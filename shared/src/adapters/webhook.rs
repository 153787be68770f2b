//! Posts a run's outcome to Microsoft Teams (an incoming webhook or a Workflows "post to a
//! channel when a webhook request is received" URL) and to a company's own webhook (JSON,
//! signed with HMAC-SHA256).
//!
//! Teams gets an Adaptive Card in a `message` envelope (what both kinds of Teams URL accept).
//! The webhook gets the [`RunNotice`] as JSON with `X-Revoke365-Timestamp` (Unix seconds) and
//! `X-Revoke365-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
//! The URLs carry tokens: they never appear in errors or logs.

use super::http::{Call, HttpCore};
use crate::config::Secret;
use crate::error::{ErrorKind, RemoteError};
use crate::ports::{HookKind, Notifier, RunNotice};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;

pub const TIMESTAMP_HEADER: &str = "X-Revoke365-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Revoke365-Signature";

pub struct WebhookClient {
    core: Arc<HttpCore>,
    /// Signs the generic webhook's posts; without it they are not sent.
    secret: Option<Secret>,
}

impl WebhookClient {
    pub fn new(core: Arc<HttpCore>, secret: Option<Secret>) -> WebhookClient {
        WebhookClient { core, secret }
    }
}

#[async_trait]
impl Notifier for WebhookClient {
    async fn post(&self, kind: HookKind, url: &str, notice: &RunNotice) -> Result<(), RemoteError> {
        let service = match kind {
            HookKind::Teams => "teams",
            HookKind::Webhook => "webhook",
        };
        let call = Call::new(service, format!("POST {}", notice.event), None).once();
        let (body, signed) = match kind {
            HookKind::Teams => (teams_card(notice).to_string(), None),
            HookKind::Webhook => {
                let secret = self.secret.as_ref().ok_or_else(|| {
                    call.invalid(
                        "webhook secret",
                        "the company has a webhook_url but no secret signs its posts: set REVOKE365_WEBHOOK_SECRET, [webhook] secret in the CLI config, or webhook_secret in the Secrets Manager secret",
                    )
                })?;
                let body = serde_json::to_string(notice)
                    .map_err(|e| call.invalid("notice", e.to_string()))?;
                let timestamp = chrono::Utc::now().timestamp().to_string();
                let signature = signature(secret, &timestamp, &body);
                (body, Some((timestamp, signature)))
            }
        };
        let reply = self
            .core
            .send(&call, |client| {
                let mut request = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                if let Some((timestamp, signature)) = &signed {
                    request = request
                        .header(TIMESTAMP_HEADER, timestamp)
                        .header(SIGNATURE_HEADER, signature);
                }
                request
            })
            .await
            .map_err(|e| scrub(e, url))?;
        if reply.is_success() {
            Ok(())
        } else {
            Err(call.api(reply.status, None, reply.body_snippet()))
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, keyed with the webhook secret.
pub fn signature(secret: &Secret, timestamp: &str, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The Teams message: an Adaptive Card with the run's headline and a few facts.
pub fn teams_card(notice: &RunNotice) -> Value {
    let restore = notice.event.starts_with("restore");
    let (what, counted) = match restore {
        true => ("Restore", "Restored"),
        false => ("Access removal", "Removed"),
    };
    let outcome = if notice.success {
        "succeeded"
    } else {
        "FAILED"
    };
    let headline = format!(
        "{what} {outcome}: {} ({})",
        notice.user_email, notice.company_name
    );
    let fact = |title: &str, value: String| json!({"title": title, "value": value});
    let facts = vec![
        fact(counted, notice.total_permissions_removed.to_string()),
        fact("Failures", notice.failures.to_string()),
        fact(
            "Ticket",
            notice.ticket_id.clone().unwrap_or_else(|| "none".into()),
        ),
        fact("Status", notice.status.clone()),
        fact("Run", notice.run_id.clone()),
    ];
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {
                        "type": "TextBlock",
                        "text": headline,
                        "weight": "Bolder",
                        "size": "Medium",
                        "wrap": true,
                        "color": if notice.success { "Good" } else { "Attention" },
                    },
                    {"type": "FactSet", "facts": facts},
                ],
            },
        }],
    })
}

/// The error without the URL (a transport error names it, and it carries a token).
fn scrub(mut e: RemoteError, url: &str) -> RemoteError {
    let hide = |m: &mut String| {
        let mut forms = vec![url.to_string()];
        if let Ok(parsed) = url::Url::parse(url) {
            forms.push(parsed.to_string());
        }
        for form in forms {
            *m = m.replace(&form, "<webhook URL>");
        }
    };
    match &mut e.kind {
        ErrorKind::Transport { message }
        | ErrorKind::Unreachable { message }
        | ErrorKind::Protocol { message }
        | ErrorKind::InvalidInput { message, .. } => hide(message),
        _ => {}
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(success: bool) -> RunNotice {
        RunNotice {
            event: "revocation.finished".into(),
            run_id: "r-1".into(),
            company_id: "acme".into(),
            company_name: "Acme".into(),
            user_email: "leaver@acme.example".into(),
            success,
            status: "completed".into(),
            total_permissions_removed: 3,
            failures: 0,
            ticket_id: Some("42".into()),
            result_url: None,
        }
    }

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // printf '1.x' | openssl dgst -sha256 -hmac key
        let s = signature(&Secret::new("key"), "1", "x");
        assert_eq!(
            s,
            "sha256=fc4913c41a7bf793267e2a384f3261c9436ec2cd097bd745e7b0d99113f510ec"
        );
        assert_ne!(s, signature(&Secret::new("key"), "2", "x"));
        assert_ne!(s, signature(&Secret::new("other"), "1", "x"));
    }

    #[test]
    fn a_failed_run_says_failed_in_the_card_headline() {
        let card = teams_card(&notice(false));
        let headline = card["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap();
        assert_eq!(
            headline,
            "Access removal FAILED: leaver@acme.example (Acme)"
        );
        let ok = teams_card(&notice(true));
        assert!(ok["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .contains("succeeded"));
    }

    #[test]
    fn errors_do_not_show_the_url() {
        let url = "https://example.webhook.office.com/webhookb2/abc@def/IncomingWebhook/tok/en";
        let e = RemoteError::new(
            "teams",
            "POST",
            ErrorKind::Transport {
                message: format!("error sending request for url ({url})"),
            },
        );
        assert!(!scrub(e, url).to_string().contains("tok/en"));
    }
}
