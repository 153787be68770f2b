//! `revoke365 audit verify RUN_ID`: checks a run's audit trail on disk against itself and the
//! manifest anchored (and sealed with the data directory's audit key) when the run verified.

use crate::args::{AuditVerifyArgs, Format};
use crate::{open_store, CliError, EXIT_NOT_SUCCESSFUL, EXIT_SUCCESS};
use revoke365::model::{AuditCheck, AuditStatus, RunId, RunStatus};
use revoke365::steps::check_run_audit;

/// The trail holds together but is not anchored because its run has not verified (it is
/// running or interrupted, or failed before verification): not tampering, and not proof.
pub const EXIT_NOT_ANCHORED: u8 = 3;

pub async fn verify(args: &AuditVerifyArgs) -> Result<u8, CliError> {
    let run_id = RunId::parse(&args.run_id)?;
    let path = args.data_dir.join(format!("{run_id}.audit.jsonl"));
    if !path.is_file() {
        return Err(CliError::config(
            "run_id",
            format!(
                "no audit trail of run {run_id} in {}",
                args.data_dir.display()
            ),
        ));
    }
    let store = open_store(&args.data_dir, Vec::new())?;
    let check = check_run_audit(&store, &run_id)
        .await
        .map_err(|e| CliError {
            code: "audit_unreadable".into(),
            field: Some("run_id".into()),
            message: format!("cannot read the audit trail of run {run_id}: {e}"),
            exit: EXIT_NOT_SUCCESSFUL,
        })?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&check).expect("the check serializes")
        ),
        Format::Table => print!("{}", table(&check)),
    }
    Ok(exit_code(check.status))
}

/// `0` only for proof (`intact`), `3` for a trail whose run has not verified yet, `1` for
/// everything else: tampered, or unchained (a run from before chaining: nothing proves it).
fn exit_code(status: AuditStatus) -> u8 {
    match status {
        AuditStatus::Intact => EXIT_SUCCESS,
        AuditStatus::Unanchored => EXIT_NOT_ANCHORED,
        AuditStatus::Unchained | AuditStatus::Tampered => EXIT_NOT_SUCCESSFUL,
    }
}

fn table(check: &AuditCheck) -> String {
    let id = &check.run_id;
    let status = match check.status {
        AuditStatus::Intact => "intact (chains anchored in a sealed manifest)".to_string(),
        AuditStatus::Unanchored => match check.run_status {
            Some(RunStatus::Interrupted) => format!("not anchored yet: the run was interrupted before it verified (resume it: revoke365 resume {id}); nothing proves the trail until then"),
            Some(status) if status.is_terminal() => format!("not anchored: the run ended {} before it verified; nothing proves the trail", status.as_str()),
            _ => "not anchored yet: the run has not verified; nothing proves the trail until then".to_string(),
        },
        AuditStatus::Unchained => {
            "UNCHAINED: written before audit trails were chained; nothing proves it".to_string()
        }
        AuditStatus::Tampered => "TAMPERED".to_string(),
    };
    let mut out = format!(
        "audit trail of run {id}: {status} ({} records in {} chains)\n",
        check.records, check.chains
    );
    for p in &check.problems {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!("  {kind}: {}\n", p.message));
    }
    out
}
