//! The audit trail is enough to put everything back.

use crate::harness::Harness;
use crate::kit::{fast_http, fixture};
use revoke365::ports::RunStore;
use revoke365::steps::Connector;
use serde_json::json;

#[tokio::test]
async fn replaying_the_audit_through_the_restore_endpoints_restores_the_tenant() {
    for (name, user, company) in [
        ("acme-tenant.json", "john.smith@acmecorp.com", "acme"),
        ("hard-tenant.json", "john.smith@globexcorp.com", "globex"),
    ] {
        let h = Harness::start(fixture(name), fast_http(10)).await;
        let initial = h.snapshot().mailboxes;
        let run = h
            .run(json!({"user_email": user, "company_id": company}))
            .await;
        assert_ne!(
            h.snapshot().mailboxes,
            initial,
            "{name}: the run changed the tenant"
        );

        // Only the audit file on disk: re-read it as a later process would.
        let records =
            revoke365::adapters::sqlite_store::read_audit_file(&h.store.audit_path(&run.run_id))
                .unwrap();
        assert_eq!(records, h.store.audit_records(&run.run_id).await.unwrap());
        let conns = h.connector.connect(&h.org).await.unwrap();
        let summary = revoke365::restore::restore(conns.tenant(), &records).await;
        assert!(summary.failed.is_empty(), "{name}: {:?}", summary.failed);
        assert_eq!(
            summary.restored.len() as u32,
            run.result
                .unwrap()
                .removal_summary
                .total_permissions_removed
        );
        assert_eq!(
            h.snapshot().mailboxes,
            initial,
            "{name}: restored tenant equals the fixture"
        );
    }
}
