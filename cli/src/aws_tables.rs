//! `--aws`: the deployment's DynamoDB tables, named by `infra/resources.json` with the stack's
//! `REVOKE365_NAME_PREFIX` (`REVOKE365_RUNS_TABLE` etc. win), reached with the credentials and
//! region of the usual AWS environment (variables, profile, SSO), as the functions reach them.

use revoke365::adapters::aws::dynamodb::DynamoRunStore;
use revoke365::adapters::aws::org_table::OrgTable;
use revoke365::adapters::aws::resources::AwsNames;

pub struct AwsTables {
    pub runs: DynamoRunStore,
    pub orgs: OrgTable,
}

pub async fn connect() -> AwsTables {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let names = AwsNames::from_env_prefixed();
    let client = aws_sdk_dynamodb::Client::new(&config);
    AwsTables {
        runs: DynamoRunStore::new(client.clone(), &names),
        orgs: OrgTable::new(client, &names),
    }
}
