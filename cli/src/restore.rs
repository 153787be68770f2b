//! `revoke365 restore RUN_ID`: a restore run against the tenant the run was made on (its
//! config, or the sandbox in the state the run left it), to its end. `revoke365 restore
//! --company-id C --mailbox M --as-of SNAPSHOT_ID|DATE`: a backup restore of one mailbox from
//! the permission index, against the tenant the config (or sandbox) names.

use crate::args::RestoreArgs;
use crate::CliError;
use crate::{engine, finish, intake_error, new_origin, os_user, progress, stored_origin, target};
use revoke365::model::{BackupRestoreRequest, RestoreRequest, RunId};
use std::sync::Arc;

pub async fn restore(args: RestoreArgs) -> Result<u8, CliError> {
    // Validate the options before anything else: no config read, no simulator, no network.
    let (body, source) = match &args.run_id {
        Some(id) => {
            let body = args.request_body();
            RestoreRequest::from_json(&body)?;
            (body, Some(RunId::parse(id)?))
        }
        None => {
            let body = args.backup_body();
            BackupRestoreRequest::from_json(&body)?;
            (body, None)
        }
    };
    // A run is restored on the tenant it was made on; a backup on the one the flags name.
    let (data_dir, target) = match &source {
        Some(run) => {
            let (dir, origin) =
                stored_origin(run, &args.data_dir, &args.config, &args.sandbox).await?;
            let target = target(origin, Some(dir.clone()), args.concurrency).await?;
            (Some(dir), target)
        }
        None => {
            let origin = new_origin(&args.config, &args.sandbox, &args.data_dir)?;
            let target = target(origin, args.data_dir.clone(), args.concurrency).await?;
            (args.data_dir.clone(), target)
        }
    };
    let store = Arc::new(crate::target_store(&target)?);
    let progress = Arc::new(progress::Progress::default());
    let engine = engine(store.clone(), &target, progress.clone());
    let origin_json = serde_json::to_string(&target.origin).expect("origin serializes");
    let principal = revoke365::authorize::principal::os_user(&os_user());
    let mut watch = None;
    let on_accept = |id: &RunId| {
        watch = Some(progress.watch(store.clone(), id.clone(), target.connector.core.clone()));
    };
    let (principal, origin) = (Some(principal.as_str()), Some(origin_json.as_str()));
    let run = match &source {
        Some(run) => {
            engine
                .restore_watched(principal, run, &body, origin, on_accept)
                .await
        }
        None => {
            engine
                .restore_backup_watched(principal, &body, origin, on_accept)
                .await
        }
    }
    .map_err(intake_error)?;
    if let Some(w) = watch {
        w.finish();
    }
    finish(&store, &target, run, &data_dir, args.format).await
}
