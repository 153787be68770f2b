//! `revoke365 audit verify RUN_ID`: checks a run's audit trail on disk against itself and the
//! manifest anchored when the run verified.

use crate::args::{AuditVerifyArgs, Format};
use crate::{CliError, EXIT_NOT_SUCCESSFUL, EXIT_SUCCESS};
use revoke365::adapters::sqlite_store::{
    audit_manifest_path, read_audit_file, read_audit_manifest,
};
use revoke365::model::{check_audit, AuditCheck, AuditStatus, RunId};

pub fn verify(args: &AuditVerifyArgs) -> Result<u8, CliError> {
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
    let unreadable = |e: revoke365::error::StoreError| CliError {
        code: "audit_unreadable".into(),
        field: Some("run_id".into()),
        message: format!("cannot read the audit trail of run {run_id}: {e}"),
        exit: EXIT_NOT_SUCCESSFUL,
    };
    let records = read_audit_file(&path).map_err(unreadable)?;
    let manifest =
        read_audit_manifest(&audit_manifest_path(&args.data_dir, &run_id)).map_err(unreadable)?;
    let check = check_audit(&run_id, &records, manifest.as_ref());
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&check).expect("the check serializes")
        ),
        Format::Table => print!("{}", table(&check)),
    }
    Ok(if check.is_intact() {
        EXIT_SUCCESS
    } else {
        EXIT_NOT_SUCCESSFUL
    })
}

fn table(check: &AuditCheck) -> String {
    let status = match check.status {
        AuditStatus::Intact => "intact",
        AuditStatus::Unanchored => "chains intact, not anchored (the run has not verified)",
        AuditStatus::Unchained => "unchained (written before audit trails were chained)",
        AuditStatus::Tampered => "TAMPERED",
    };
    let mut out = format!(
        "audit trail of run {}: {status} ({} records in {} chains)\n",
        check.run_id, check.records, check.chains
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
