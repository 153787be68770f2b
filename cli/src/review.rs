//! `revoke365 review`: the access review of a company's newest snapshot; with `--revoke` one
//! revocation per listed user and one cleanup per trustee that no longer exists, all in one
//! digest (one ticket, one note, one email); with `--notify` the digest alone.

use crate::args::{Format, ReviewArgs};
use crate::index::connect_error;
use crate::{
    company, engine, internal, new_origin, os_user, target, CliError, EXIT_BAD_INPUT,
    EXIT_NOT_SUCCESSFUL, EXIT_SUCCESS,
};
use revoke365::index::{deliver_digest, review as review_index, AccessError, Review, ReviewAction};
use revoke365::ports::Connector;
use serde_json::json;
use std::sync::Arc;

pub async fn review(args: ReviewArgs) -> Result<u8, CliError> {
    let t = &args.tenant;
    let origin = new_origin(&t.config, &t.sandbox, &t.data_dir)?;
    let target = target(origin, t.data_dir.clone(), t.concurrency).await?;
    let org = company(&target.orgs, &t.company_id)?.clone();
    let store = Arc::new(crate::target_store(&target)?);
    let conns = target
        .connector
        .connect(&org)
        .await
        .map_err(|e| connect_error(&org, e))?;
    let found = review_index(
        store.as_ref(),
        conns.directory.as_ref(),
        &org,
        args.inactive_days,
    )
    .await
    .map_err(|e| match e {
        AccessError::NoSnapshot(_) => CliError {
            code: "no_index".into(),
            field: Some("company_id".into()),
            message: e.to_string(),
            exit: EXIT_BAD_INPUT,
        },
        other => internal(other.to_string()),
    })?;
    let mut out = serde_json::to_value(&found).expect("review serializes");
    let mut table = revoke365::render::review_text(&found);
    // Without a digest: exit 1 when something is listed; with one, when anything failed.
    let mut listed_or_failed = !found.trustees.is_empty();
    if args.revoke || args.notify {
        let actions = match args.revoke {
            true => revoke_listed(&store, &target, &org, &found, &args).await,
            false => Vec::new(),
        };
        let delivery = deliver_digest(
            conns.notify(),
            &org,
            &found,
            &actions,
            args.ticket.as_deref(),
            args.requested_by.as_deref(),
        )
        .await;
        let failed = actions.iter().any(|a| !a.success) || !delivery.errors.is_empty();
        let marker = revoke365::index::digest_marker(&org, &found);
        crate::sandbox_artifacts_marked(
            &target,
            &marker,
            &marker.replace(' ', "-"),
            delivery.ticket_id.as_deref(),
        );
        table = revoke365::render::digest_text(&found, &actions, &marker);
        for e in &delivery.errors {
            table.push_str(&format!("ERROR: {e}\n"));
        }
        listed_or_failed = failed;
        out["revocations"] = json!(actions);
        out["digest"] = json!(delivery);
        out["success"] = json!(!failed);
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&out).expect("JSON")),
        Format::Table => print!("{table}"),
    }
    Ok(match listed_or_failed {
        false => EXIT_SUCCESS,
        true => EXIT_NOT_SUCCESSFUL,
    })
}

/// One revocation per listed directory user and one cleanup per trustee that no longer
/// exists, each reported in the digest rather than on its own.
async fn revoke_listed(
    store: &Arc<revoke365::adapters::sqlite_store::SqliteRunStore>,
    target: &crate::Target,
    org: &revoke365::model::OrgSettings,
    found: &Review,
    args: &ReviewArgs,
) -> Vec<ReviewAction> {
    let progress = Arc::new(crate::progress::Progress::default());
    let engine = engine(store.clone(), target, progress);
    let principal = revoke365::authorize::principal::os_user(&os_user());
    let mut actions = Vec::new();
    for t in &found.trustees {
        let mut action = ReviewAction::of(t);
        let mut body = match t.request(&org.company_id, found) {
            Ok(body) => body,
            Err(why) => {
                action.error = Some(why);
                actions.push(action);
                continue;
            }
        };
        if let Some(ticket) = &args.ticket {
            body["ticket_id"] = json!(ticket);
        }
        if let Some(who) = &args.requested_by {
            body["requested_by"] = json!(who);
        }
        match engine
            .run_watched(Some(&principal), &body, None, |_| {})
            .await
        {
            Ok(run) => action = action.ran(&run),
            Err(e) => action.error = Some(e.to_string()),
        }
        actions.push(action);
    }
    actions
}
