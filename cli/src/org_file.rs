//! Company settings files: the `[[company]]` blocks of a TOML file (a config file is one; its
//! other sections are left alone) or JSON (one company object, a list of them, or
//! `{"company": [...]}`). Read and checked by the same rules as the config's companies.

use crate::CliError;
use revoke365::model::{validate_companies, OrgSettings, PsaKind};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct TomlOrgFile {
    #[serde(default)]
    company: Vec<OrgSettings>,
    /// A config file's `[psa]`: its `kind` is the PSA of every company that names none.
    #[serde(default)]
    psa: PsaDefault,
}

/// Only `kind` of a `[psa]` table matters here; its other keys are left alone.
#[derive(Deserialize, Default)]
struct PsaDefault {
    kind: Option<PsaKind>,
}

/// Which `[[company]]` tables name their own `psa_kind`.
fn companies_naming_psa_kind(text: &str) -> Vec<bool> {
    let Ok(value) = toml::from_str::<toml::Table>(text) else {
        return Vec::new();
    };
    value
        .get("company")
        .and_then(|c| c.as_array())
        .map(|companies| {
            companies
                .iter()
                .map(|c| c.get("psa_kind").is_some())
                .collect()
        })
        .unwrap_or_default()
}

/// A company's own `psa_kind` wins; the others take `default` (a config's `[psa] kind`).
pub fn apply_default_psa_kind(text: &str, orgs: &mut [OrgSettings], default: PsaKind) {
    let named = companies_naming_psa_kind(text);
    for (i, org) in orgs.iter_mut().enumerate() {
        if !named.get(i).copied().unwrap_or(false) {
            org.psa_kind = default;
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonOrgFile {
    Wrapped { company: Vec<serde_json::Value> },
    Many(Vec<serde_json::Value>),
    One(serde_json::Value),
}

/// The companies of `path`, every one valid, or an error naming the field.
pub fn read(path: &Path) -> Result<Vec<OrgSettings>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::config("file", format!("cannot read {}: {e}", path.display())))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let orgs = if is_json {
        let file: JsonOrgFile =
            serde_json::from_str(&text).map_err(|e| parse_error("file", path, &e.to_string()))?;
        let values = match file {
            JsonOrgFile::Wrapped { company } | JsonOrgFile::Many(company) => company,
            JsonOrgFile::One(one) => vec![one],
        };
        values
            .into_iter()
            .map(|v| {
                serde_json::from_value(v).map_err(|e| parse_error("file", path, &e.to_string()))
            })
            .collect::<Result<Vec<OrgSettings>, _>>()?
    } else {
        let mut file: TomlOrgFile =
            toml::from_str(&text).map_err(|e| parse_error("file", path, &e.to_string()))?;
        if let Some(kind) = file.psa.kind {
            apply_default_psa_kind(&text, &mut file.company, kind);
        }
        file.company
    };
    check_companies(path, &orgs)?;
    Ok(orgs)
}

/// The model's checks ([`validate_companies`]), as the CLI reports them.
pub fn check_companies(path: &Path, orgs: &[OrgSettings]) -> Result<(), CliError> {
    validate_companies(orgs)
        .map_err(|e| CliError::config(&e.field, format!("{}: {e}", path.display())))
}

/// What a company's empty principal list means, one warning per list left out: a company
/// must be able to tell from `org put` and `check` who may do what for it, before a caller
/// finds out. True to `revoke365::authorize`: an empty `allowed_principals` allows every
/// caller; an empty `restore_principals` or `access_principals` allows no deployed trigger's
/// caller, only the CLI's local operator.
pub fn list_warnings(org: &OrgSettings) -> Vec<String> {
    let company = &org.company_id;
    let mut warnings = Vec::new();
    if org.allowed_principals.is_empty() {
        warnings.push(format!(
            "warning: company '{company}' has no allowed_principals: every caller that reaches a trigger (an IAM-authorized API route, the offboarding queue, the alert bus, a signed webhook) may start, read and cancel its revoke and contain runs; list who may in allowed_principals"
        ));
    }
    if org.restore_principals.is_empty() {
        warnings.push(format!(
            "warning: company '{company}' has no restore_principals: on AWS no caller may restore its runs or restore its mailboxes from a backup; only the CLI's local operator may; list who may in restore_principals"
        ));
    }
    if org.access_principals.is_empty() {
        warnings.push(format!(
            "warning: company '{company}' has no access_principals: on AWS no caller may read who can open its mailboxes (GET /access); only the CLI's local operator may; list who may in access_principals"
        ));
    }
    warnings
}

/// [`list_warnings`] of each company, on stderr (stdout keeps its JSON or table).
pub fn print_list_warnings(orgs: &[OrgSettings]) {
    for warning in orgs.iter().flat_map(list_warnings) {
        eprintln!("{warning}");
    }
}

/// A file that does not parse: the error names the field serde names (a missing, unknown or
/// mistyped key), else `default_field`.
pub fn parse_error(default_field: &str, path: &Path, message: &str) -> CliError {
    let message = message.trim();
    let named = ["missing field `", "unknown field `", "invalid type"]
        .iter()
        .find_map(|marker| {
            let rest = &message[message.find(marker)? + marker.len()..];
            rest.split_once('`').map(|(field, _)| field.to_string())
        })
        .filter(|f| !f.is_empty() && !f.contains(' '));
    let field = named
        .or_else(|| toml_key(message))
        .unwrap_or_else(|| default_field.into());
    CliError::config(&field, format!("{}: {message}", path.display()))
}

/// TOML errors point at the line: `company_id = 5` names the key written there.
fn toml_key(message: &str) -> Option<String> {
    let line = message
        .lines()
        .find(|l| l.contains(" | ") && l.contains('='))?;
    let (_, code) = line.split_once(" | ")?;
    let key = code.split('=').next()?.trim();
    (!key.is_empty() && !key.contains(' ')).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_companys_own_psa_kind_wins_over_the_files_and_none_needs_no_psa_company() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("companies.toml");
        std::fs::write(
            &path,
            r#"
[psa]
kind = "halo"
[psa.halo]
outcome_id = 7

[[company]]
company_id = "acme"
company_name = "Acme Corp"
tenant_id = "11111111-1111-1111-1111-111111111111"
psa_company = "Acme Corp"
m365_permission_ticket_board = "Service Desk"
notification_sender = "it@acme.example"

[[company]]
company_id = "initech"
company_name = "Initech"
tenant_id = "22222222-2222-2222-2222-222222222222"
psa_kind = "none"
m365_permission_ticket_board = "-"
notification_sender = "it@initech.example"
"#,
        )
        .unwrap();
        let orgs = read(&path).unwrap();
        let kinds: Vec<PsaKind> = orgs.iter().map(|o| o.psa_kind).collect();
        assert_eq!(kinds, [PsaKind::Halo, PsaKind::None]);
    }
}
