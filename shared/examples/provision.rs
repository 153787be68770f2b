//! Creates the queues, tables, secret and rules of `infra/resources.json` in the AWS endpoint
//! the environment names (LocalStack and DynamoDB Local: `eval "$(infra/local-aws.sh start)"`),
//! so the handlers can be tried with `cargo lambda watch`. `REVOKE365_NAME_PREFIX` prefixes
//! every name; `REVOKE365_LOCAL_SECRET_JSON` sets the secret's value (default: a placeholder).

use revoke365::adapters::aws::provision::{provision, Options};

const PLACEHOLDER_SECRET: &str = r#"{"m365_client_id":"00000000-0000-0000-0000-000000000000","m365_client_secret":"local-placeholder","cw_company":"local","cw_public_key":"local-placeholder","cw_private_key":"local-placeholder","cw_client_id":"local-placeholder"}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let options = Options {
        prefix: std::env::var("REVOKE365_NAME_PREFIX").unwrap_or_default(),
        visibility_timeout_secs: None,
        secret_json: Some(
            std::env::var("REVOKE365_LOCAL_SECRET_JSON")
                .unwrap_or_else(|_| PLACEHOLDER_SECRET.to_string()),
        ),
    };
    let made = provision(&config, &options).await?;
    for (name, url) in &made.queue_urls {
        eprintln!("queue {name}: {url}");
    }
    eprintln!(
        "tables {}, {}, {}; secret {}",
        made.names.runs_table, made.names.audit_table, made.names.org_table, made.names.secret_id
    );
    Ok(())
}
