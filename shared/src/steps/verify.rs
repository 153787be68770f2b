//! Steps 8–11: verification's part of a run — re-read the tenant, audit what was found, anchor
//! the trail, and end the run. What is read and how the run ends is the run's workflow's (a
//! revocation's live re-read is [`super::reread`], its report [`super::run_report`]). The side
//! effects (ticket, note, email) come after the whole re-read, each at most once (see
//! [`super::notify`]).

use super::audit_trail::{self, ChainWriter};
use super::workflow::{workflow_of, Workflow};
use super::{claim, Delivery, RunContext};
use crate::error::StepError;
use crate::messages::{Step, StepMessage};
use crate::model::{AuditPhase, AuditRecord, Run, RunStatus, Verification, VERIFICATION_CHAIN};
use chrono::Utc;
use tracing::{info, info_span, Instrument};

/// Verifies the run: re-reads the tenant (what its [`Workflow`] reads back), audits what it
/// found and anchors the trail, then ends the run as its workflow ends it (the result, the
/// ticket note, the email). A verification that nears its deadline continues in a new message.
pub async fn verify(cx: RunContext<'_>, delivery: &Delivery) -> Result<(), StepError> {
    let RunContext { store, run, .. } = cx;
    let run_id = &run.run_id;
    let span = info_span!("verify", run_id = %run_id, company_id = %run.request.company_id);
    async {
        if !claim(
            store,
            run_id,
            RunStatus::Removing,
            RunStatus::Verifying,
            delivery,
        )
        .await?
        {
            return Ok(());
        }
        let outcome = finish(cx, workflow_of(run), delivery).await;
        if !matches!(outcome, Ok(Finished::Done)) {
            // A continuation or a retry takes the run at once.
            store.release(run_id, &delivery.holder).await?;
        }
        outcome.map(drop)
    }
    .instrument(span)
    .await
}

enum Finished {
    Done,
    /// Handed on to a continuation at the deadline.
    Continued,
}

async fn finish(
    cx: RunContext<'_>,
    workflow: &dyn Workflow,
    delivery: &Delivery,
) -> Result<Finished, StepError> {
    let RunContext {
        store, queue, run, ..
    } = cx;
    let run_id = &run.run_id;
    let mut items = store.items(run_id).await?;
    // A contain run's first phase may have planned an item discovery found again.
    super::contain::fold_duplicates(&mut items);
    let facts = store.scan_facts(run_id).await?;
    let Some(found) = workflow.reread(cx, &mut items, &facts, delivery).await? else {
        info!("deadline near; verification continues in a new message");
        queue
            .send(StepMessage::new(run_id.clone(), Step::Verify))
            .await?;
        return Ok(Finished::Continued);
    };
    info!(
        remaining = found.verification.remaining.len(),
        read = found.read,
        "verification re-read done"
    );
    ChainWriter::single(store, run_id, VERIFICATION_CHAIN.into())
        .append(verification_record(run, &found.verification))
        .await?;
    // Every chain is complete now: anchor their heads in the run.
    audit_trail::anchor(store, run_id).await?;
    workflow.finish(cx, &items, found, facts).await?;
    Ok(Finished::Done)
}

fn verification_record(run: &Run, verification: &Verification) -> AuditRecord {
    AuditRecord {
        run_id: run.run_id.clone(),
        record_id: "verification".into(),
        phase: AuditPhase::Verification,
        recorded_at: Utc::now(),
        user_email: run.request.user_email.clone(),
        company_id: run.request.company_id.clone(),
        requested_by: run.request.requested_by.clone(),
        requested_by_principal: run.request.requested_by_principal.clone(),
        reason: run.request.reason.clone(),
        item_id: None,
        grant: None,
        action: Some("verify".into()),
        result: None,
        detail: None,
        verification: Some(verification.clone()),
        victim: None,
        chain: None,
        seq: None,
        prev_hash: None,
        hash: None,
    }
}
