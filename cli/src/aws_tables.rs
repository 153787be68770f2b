//! `--aws`: the deployment's DynamoDB tables, named by `infra/resources.json` with the stack's
//! `REVOKE365_NAME_PREFIX` (`REVOKE365_RUNS_TABLE` etc. win), reached with the credentials and
//! region of the usual AWS environment (variables, profile, SSO), as the functions reach them.

use crate::CliError;
use aws_sdk_dynamodb::config::ProvideCredentials;
use revoke365::adapters::aws::dynamodb::DynamoRunStore;
use revoke365::adapters::aws::org_table::OrgTable;
use revoke365::adapters::aws::resources::AwsNames;

pub struct AwsTables {
    pub runs: DynamoRunStore,
    pub orgs: OrgTable,
}

/// The tables, once the AWS environment names a region and yields credentials: without
/// either, every call would fail with the SDK's nested error structs, so the one thing
/// missing is said here in one line instead.
pub async fn connect() -> Result<AwsTables, CliError> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    if config.region().is_none() {
        return Err(CliError::config(
            "aws_region",
            "AWS region not found: set AWS_REGION (or AWS_DEFAULT_REGION), or a region in the AWS_PROFILE's config",
        ));
    }
    let found = match config.credentials_provider() {
        Some(provider) => provider.provide_credentials().await.is_ok(),
        None => false,
    };
    if !found {
        return Err(CliError::config(
            "aws_credentials",
            "AWS credentials not found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (run `aws sso login` for an SSO profile)",
        ));
    }
    let names = AwsNames::from_env_prefixed();
    let client = aws_sdk_dynamodb::Client::new(&config);
    Ok(AwsTables {
        runs: DynamoRunStore::new(client.clone(), &names),
        orgs: OrgTable::new(client, &names),
    })
}
