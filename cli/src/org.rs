//! `revoke365 org put|get|list`: company settings in the deployment's org table (`--aws`),
//! or, read-only, the `[[company]]` blocks of a config file. Every file is checked by the
//! same rules as the config's companies before anything is written.

use crate::args::{Format, OrgCommand, OrgGetArgs, OrgPutArgs, OrgSourceArgs};
use crate::{aws_tables, config, org_file, CliError, EXIT_BAD_INPUT};
use revoke365::model::OrgSettings;

pub async fn org(command: OrgCommand) -> Result<u8, CliError> {
    match command {
        OrgCommand::Put(args) => put(&args).await,
        OrgCommand::Get(args) => get(&args).await,
        OrgCommand::List(args) => list(&args).await,
    }
}

fn unavailable(what: String, e: impl std::fmt::Display) -> CliError {
    CliError {
        code: "store_unavailable".into(),
        field: None,
        message: format!("{what}: {e}"),
        exit: EXIT_BAD_INPUT,
    }
}

async fn put(args: &OrgPutArgs) -> Result<u8, CliError> {
    let orgs = org_file::read(&args.file)?;
    org_file::print_list_warnings(&orgs);
    if args.aws {
        let tables = aws_tables::connect().await?;
        tables
            .orgs
            .put(&orgs)
            .await
            .map_err(|e| unavailable(format!("cannot write to {}", tables.orgs.table()), e))?;
        eprintln!("wrote {} to {}", ids(&orgs).join(", "), tables.orgs.table());
    } else {
        eprintln!(
            "{} is valid; nothing written (add --aws to write it to the org-settings table)",
            args.file.display()
        );
    }
    print_orgs(&orgs, args.format);
    Ok(0)
}

async fn get(args: &OrgGetArgs) -> Result<u8, CliError> {
    let orgs = read(&args.source).await?;
    let company_id = args.company_id.trim();
    match orgs.iter().find(|o| o.company_id == company_id) {
        Some(org) => {
            match args.source.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(org).expect("settings serialize")
                ),
                Format::Table => print!("{}", org_table(std::slice::from_ref(org))),
            }
            Ok(0)
        }
        None => Err(CliError {
            code: "not_found".into(),
            field: Some("company_id".into()),
            message: format!(
                "no company '{company_id}' (there are: {})",
                match ids(&orgs).as_slice() {
                    [] => "none".to_string(),
                    all => all.join(", "),
                }
            ),
            exit: EXIT_BAD_INPUT,
        }),
    }
}

async fn list(args: &OrgSourceArgs) -> Result<u8, CliError> {
    print_orgs(&read(args).await?, args.format);
    Ok(0)
}

/// The companies of the org table (`--aws`) or of the config.
async fn read(source: &OrgSourceArgs) -> Result<Vec<OrgSettings>, CliError> {
    match (&source.config, source.aws) {
        (_, true) => {
            let tables = aws_tables::connect().await?;
            tables
                .orgs
                .list()
                .await
                .map_err(|e| unavailable(format!("cannot read {}", tables.orgs.table()), e))
        }
        (Some(path), false) => Ok(config::basics(path)?.orgs),
        (None, false) => Err(CliError::config(
            "config",
            "say where the companies are: --config FILE (read-only) or --aws (the org-settings table)",
        )),
    }
}

fn ids(orgs: &[OrgSettings]) -> Vec<&str> {
    orgs.iter().map(|o| o.company_id.as_str()).collect()
}

fn print_orgs(orgs: &[OrgSettings], format: Format) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(orgs).expect("settings serialize")
        ),
        Format::Table => print!("{}", org_table(orgs)),
    }
}

/// The settings people check at a glance; `--format json` has every field.
fn org_table(orgs: &[OrgSettings]) -> String {
    let mut out = String::new();
    for org in orgs {
        let list = |v: &[String]| match v {
            [] => "-".to_string(),
            all => all.join(", "),
        };
        let scope: Vec<String> = org
            .m365_permission_removal_scope
            .iter()
            .map(|t| t.as_str().to_string())
            .collect();
        out.push_str(&format!(
            "{} ({})\n  tenant_id: {}\n  psa_company: {}  board: {}\n  sender: {}\n  recipients: {}\n  removal scope: {}\n  allowed principals: {}\n",
            org.company_id,
            org.company_name,
            org.tenant_id,
            org.psa_company,
            org.m365_permission_ticket_board,
            org.notification_sender,
            list(&org.m365_permission_notification_recipients),
            if scope.is_empty() { "all".to_string() } else { scope.join(", ") },
            list(&org.allowed_principals),
        ));
    }
    if orgs.is_empty() {
        out.push_str("(no companies)\n");
    }
    out
}
