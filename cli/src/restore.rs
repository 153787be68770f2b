//! `revoke365 restore RUN_ID`: a restore run against the tenant the run was made on (its
//! config, or the sandbox in the state the run left it), to its end. `revoke365 restore
//! --company-id C --mailbox M --as-of SNAPSHOT_ID|DATE`: a backup restore of one mailbox from
//! the permission index, against the tenant the config (or sandbox) names.

use crate::args::RestoreArgs;
use crate::CliError;
use crate::{
    engine, finish, intake_error, new_origin, open_store, os_user, progress, stored_origin, target,
};
use revoke365::model::{BackupRestoreRequest, RestoreRequest, RunId};
use std::sync::Arc;

pub async fn restore(args: RestoreArgs) -> Result<u8, CliError> {
    let Some(run_id) = &args.run_id else {
        return backup(args).await;
    };
    // Validate the options before anything else: no config read, no simulator, no network.
    let body = args.request_body();
    RestoreRequest::from_json(&body)?;
    let source = RunId(run_id.trim().to_string());
    let (data_dir, origin) =
        stored_origin(&source, &args.data_dir, &args.config, &args.sandbox).await?;
    let target = target(origin, Some(data_dir.clone()), args.concurrency, true).await?;
    let store = Arc::new(open_store(&target.data_dir, target.orgs.clone())?);
    let progress = Arc::new(progress::Progress::default());
    let engine = engine(store.clone(), &target, progress.clone());
    let origin_json = serde_json::to_string(&target.origin).expect("origin serializes");
    let principal = revoke365::authorize::principal::os_user(&os_user());
    let mut watch = None;
    let run = engine
        .restore_watched(Some(&principal), &source, &body, Some(&origin_json), |id| {
            watch = Some(progress.watch(store.clone(), id.clone(), target.connector.core.clone()));
        })
        .await
        .map_err(intake_error)?;
    if let Some(w) = watch {
        w.finish();
    }
    finish(&store, &target, run, &Some(data_dir), args.format).await
}

async fn backup(args: RestoreArgs) -> Result<u8, CliError> {
    let body = args.backup_body();
    BackupRestoreRequest::from_json(&body)?;
    let origin = new_origin(&args.config, &args.sandbox, &args.data_dir)?;
    let target = target(origin, args.data_dir.clone(), args.concurrency, false).await?;
    let store = Arc::new(open_store(&target.data_dir, target.orgs.clone())?);
    let progress = Arc::new(progress::Progress::default());
    let engine = engine(store.clone(), &target, progress.clone());
    let origin_json = serde_json::to_string(&target.origin).expect("origin serializes");
    let principal = revoke365::authorize::principal::os_user(&os_user());
    let mut watch = None;
    let run = engine
        .restore_backup_watched(Some(&principal), &body, Some(&origin_json), |id| {
            watch = Some(progress.watch(store.clone(), id.clone(), target.connector.core.clone()));
        })
        .await
        .map_err(intake_error)?;
    if let Some(w) = watch {
        w.finish();
    }
    finish(&store, &target, run, &args.data_dir, args.format).await
}
