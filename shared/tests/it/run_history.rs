//! Run history: `RunStore::list_runs` answers the same on the embedded store (SQLite) and on
//! DynamoDB (its index, never a scan) — newest first, every filter, pages that continue
//! where the last stopped — and `GET /revocations` lists a company's runs for the callers
//! its allow-list names, refusing bad parameters by name.

use chrono::{DateTime, Duration, TimeZone, Utc};
use revoke365::adapters::sqlite_store::SqliteRunStore;
use revoke365::error::StoreError;
use revoke365::model::{
    OrgSettings, RevocationRequest, Run, RunFilter, RunId, RunStatus, RunSummary,
};
use revoke365::ports::{RunRecords, RunStore};
use serde_json::json;

const JOHN: &str = "john.smith@acmecorp.com";
const JANE: &str = "jane.doe@acmecorp.com";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

/// A run of `user` at `company`, created `hours` after [`start`], in `status`.
fn run(company: &str, user: &str, hours: i64, status: RunStatus) -> Run {
    let request = RevocationRequest::from_json(&json!({
        "user_email": user, "company_id": company, "ticket_id": "48213"
    }))
    .unwrap();
    let mut run = Run::new(request);
    run.created_at = start() + Duration::hours(hours);
    run.status = status;
    run
}

/// Acme: John three times (the second failed), Jane twice; Globex once.
async fn seed(store: &impl RunStore) -> Vec<Run> {
    let runs = vec![
        run("acme", JOHN, 1, RunStatus::Completed),
        run("acme", JANE, 2, RunStatus::Completed),
        run("acme", JOHN, 3, RunStatus::Failed),
        run("globex", JOHN, 4, RunStatus::Completed),
        run("acme", JANE, 5, RunStatus::Accepted),
        run("acme", JOHN, 6, RunStatus::Completed),
    ];
    for r in &runs {
        store.create_run(r).await.unwrap();
    }
    runs
}

fn acme() -> RunFilter {
    RunFilter {
        company_id: Some("acme".into()),
        ..RunFilter::default()
    }
}

fn ids(rows: &[RunSummary]) -> Vec<RunId> {
    rows.iter().map(|r| r.run_id.clone()).collect()
}

/// Every page of the history `filter` selects, `limit` runs at a time.
async fn all_pages(store: &impl RunStore, filter: &RunFilter, limit: usize) -> Vec<Vec<RunId>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_runs(filter, limit, after.as_deref())
            .await
            .unwrap();
        pages.push(ids(&page.runs));
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 10, "pagination does not end");
    }
}

/// What both stores must answer for the runs of [`seed`].
async fn history_contract(store: &impl RunStore) {
    let runs = seed(store).await;
    let id = |i: usize| runs[i].run_id.clone();

    let pages = all_pages(store, &acme(), 2).await;
    assert_eq!(
        pages,
        vec![vec![id(5), id(4)], vec![id(2), id(1)], vec![id(0)]],
        "newest first, two a page, the last page without next"
    );

    let johns = RunFilter {
        user: Some(JOHN.to_uppercase()),
        ..acme()
    };
    assert_eq!(
        all_pages(store, &johns, 2).await,
        vec![vec![id(5), id(2)], vec![id(0)]]
    );

    let failed = RunFilter {
        status: Some(RunStatus::Failed),
        ..acme()
    };
    let page = store.list_runs(&failed, 10, None).await.unwrap();
    assert_eq!(ids(&page.runs), vec![id(2)]);
    assert_eq!(page.next, None);
    let row = &page.runs[0];
    assert_eq!(
        (
            row.user_email.as_str(),
            row.company_id.as_str(),
            row.status,
            row.ticket_id.as_deref()
        ),
        (JOHN, "acme", RunStatus::Failed, Some("48213"))
    );
    assert_eq!(row.created_at, start() + Duration::hours(3));

    let recent = RunFilter {
        since: Some(start() + Duration::hours(3)),
        ..acme()
    };
    let page = store.list_runs(&recent, 10, None).await.unwrap();
    assert_eq!(
        ids(&page.runs),
        vec![id(5), id(4), id(2)],
        "since is inclusive"
    );

    let globex = RunFilter {
        company_id: Some("globex".into()),
        ..RunFilter::default()
    };
    let page = store.list_runs(&globex, 10, None).await.unwrap();
    assert_eq!(ids(&page.runs), vec![id(3)]);

    let nobody = RunFilter {
        user: Some("nobody@acmecorp.com".into()),
        ..acme()
    };
    assert!(store
        .list_runs(&nobody, 10, None)
        .await
        .unwrap()
        .runs
        .is_empty());

    let e = store
        .list_runs(&acme(), 2, Some("garbage"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::BadQuery { field: "next", .. }),
        "{e}"
    );
}

fn acme_org() -> OrgSettings {
    OrgSettings::from_fixture(&revoke365_testkit::fixture("acme-tenant.json")).unwrap()
}

#[tokio::test]
async fn the_embedded_store_lists_runs_newest_first_filtered_and_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRunStore::open(dir.path(), vec![acme_org()]).unwrap();
    history_contract(&store).await;

    // On one machine the company may be left out: every company's runs.
    let all = store
        .list_runs(&RunFilter::default(), 100, None)
        .await
        .unwrap();
    assert_eq!(all.runs.len(), 6);
    assert!(all
        .runs
        .windows(2)
        .all(|w| w[0].created_at >= w[1].created_at));
}

#[tokio::test]
async fn the_embedded_store_finds_a_run_by_the_upn_the_user_resolved_to() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRunStore::open(dir.path(), vec![acme_org()]).unwrap();
    let mut by_mail = run("acme", "peter@initech.com", 1, RunStatus::Completed);
    by_mail.user = Some(
        serde_json::from_value(json!({
            "id": "u1", "upn": "peter.gibbons@initech.onmicrosoft.com", "display_name": "Peter",
            "addresses": ["peter@initech.com"]
        }))
        .unwrap(),
    );
    store.create_run(&by_mail).await.unwrap();
    let filter = RunFilter {
        user: Some("Peter.Gibbons@initech.onmicrosoft.com".into()),
        ..RunFilter::default()
    };
    let page = store.list_runs(&filter, 10, None).await.unwrap();
    assert_eq!(ids(&page.runs), vec![by_mail.run_id]);
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use crate::aws_kit::Env;
    use revoke365_testkit::fixture;

    #[tokio::test(flavor = "multi_thread")]
    async fn dynamodb_lists_a_companys_runs_from_its_index_in_pages() {
        let env = Env::start(fixture("acme-tenant.json"), 4).await;
        history_contract(&env.intake.store).await;

        // A Query names its company: without one there is nothing to query.
        let e = env
            .intake
            .store
            .list_runs(&RunFilter::default(), 10, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::BadQuery {
                    field: "company_id",
                    ..
                }
            ),
            "{e}"
        );
        // A page token of one company does not continue another's history.
        let acme_page = env.intake.store.list_runs(&acme(), 1, None).await.unwrap();
        let globex = RunFilter {
            company_id: Some("globex".into()),
            ..RunFilter::default()
        };
        let e = env
            .intake
            .store
            .list_runs(&globex, 1, acme_page.next.as_deref())
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::BadQuery { field: "next", .. }),
            "{e}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn get_revocations_pages_a_companys_history_for_an_allowed_caller() {
        let env = Env::start(fixture("acme-tenant.json"), 4).await;
        let runs = seed(&env.intake.store).await;

        let (status, first) = env
            .http("GET", "/revocations?company_id=acme&limit=3", None, None)
            .await;
        assert_eq!(status, 200, "{first}");
        let listed = |body: &serde_json::Value| -> Vec<String> {
            body["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["run_id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(listed(&first), [5, 4, 2].map(|i| runs[i].run_id.0.clone()));
        assert_eq!(first["runs"][0]["kind"], "revoke");
        assert_eq!(first["runs"][0]["user_email"], JOHN);
        let next = first["next"].as_str().expect("a next page");
        let (status, second) = env
            .http(
                "GET",
                &format!("/revocations?company_id=acme&limit=3&next={next}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{second}");
        assert_eq!(listed(&second), [1, 0].map(|i| runs[i].run_id.0.clone()));
        assert!(second.get("next").is_none(), "{second}");

        let (status, johns) = env
            .http(
                "GET",
                &format!("/revocations?company_id=acme&user={JOHN}&since=2026-11-02T11:00:00Z&status=failed"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{johns}");
        assert_eq!(listed(&johns), vec![runs[2].run_id.0.clone()]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn get_revocations_refuses_bad_parameters_by_name_and_callers_off_the_allow_list() {
        let env = Env::start(fixture("acme-tenant.json"), 4).await;
        seed(&env.intake.store).await;
        for (query, field) in [
            ("", "company_id"),
            ("?user=john.smith@acmecorp.com", "company_id"),
            ("?company_id=acme&since=yesterday", "since"),
            ("?company_id=acme&status=done", "status"),
            ("?company_id=acme&limit=0", "limit"),
            ("?company_id=acme&limit=500", "limit"),
            ("?company_id=acme&user=not-an-address", "user"),
            ("?company_id=acme&next=garbage", "next"),
            ("?company_id=acme&compnay=globex", "compnay"),
        ] {
            let (status, body) = env
                .http("GET", &format!("/revocations{query}"), None, None)
                .await;
            assert_eq!(status, 400, "{query}: {body}");
            assert_eq!(body["error"]["field"], field, "{query}: {body}");
        }

        // Acme now lets only the Helpdesk role read its runs; the test caller is another role.
        let mut acme = acme_org();
        acme.allowed_principals = vec!["arn:aws:iam::123456789012:role/Helpdesk".into()];
        env.intake.store.put_org_settings(&acme).await.unwrap();
        let (status, body) = env
            .http("GET", "/revocations?company_id=acme", None, None)
            .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.get("runs").is_none(), "{body}");
        // A company that is not configured is refused the same way (nothing said about it).
        let (status, body) = env
            .http("GET", "/revocations?company_id=initech", None, None)
            .await;
        assert_eq!(status, 403, "{body}");
    }
}

/// The org table as `revoke365 org` manages it.
#[cfg(feature = "aws")]
mod org_table {
    use super::acme_org;
    use crate::aws_kit::Env;
    use aws_sdk_dynamodb::types::AttributeValue;
    use revoke365::adapters::aws::org_table::OrgTable;
    use revoke365::ports::OrgStore;
    use revoke365_testkit::fixture;

    #[tokio::test(flavor = "multi_thread")]
    async fn put_then_get_and_list_return_the_settings_and_an_invalid_company_writes_nothing() {
        let env = Env::start(fixture("acme-tenant.json"), 4).await;
        let table = OrgTable::new(env.ddb.clone(), &env.names);
        let mut acme = acme_org();
        acme.allowed_principals = vec!["os-user:tech".into()];
        let mut globex = acme.clone();
        globex.company_id = "globex".into();
        globex.company_name = "Globex".into();

        let mut blank = globex.clone();
        blank.company_id = "initech".into();
        blank.tenant_id = " ".into();
        let e = table.put(&[globex.clone(), blank]).await.unwrap_err();
        assert!(e.to_string().contains("tenant_id"), "{e}");
        assert_eq!(table.get("globex").await.unwrap(), None, "nothing written");

        table.put(&[acme.clone(), globex.clone()]).await.unwrap();
        assert_eq!(table.get("globex").await.unwrap(), Some(globex.clone()));
        assert_eq!(table.list().await.unwrap(), vec![acme.clone(), globex]);
        // The functions read what was put.
        assert_eq!(
            env.intake.store.org_settings("acme").await.unwrap(),
            Some(acme.clone())
        );

        // An item written by hand the old way (settings as a JSON string) still reads.
        let mut initech = acme.clone();
        initech.company_id = "initech".into();
        env.ddb
            .put_item()
            .table_name(&env.names.org_table)
            .item("company_id", AttributeValue::S("initech".into()))
            .item(
                "settings",
                AttributeValue::S(serde_json::to_string(&initech).unwrap()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(table.get("initech").await.unwrap(), Some(initech));
        assert_eq!(table.list().await.unwrap().len(), 3);

        // One written by hand is held to the rules `put` checks when it is read back.
        let mut made_up = acme.clone();
        made_up.company_id = "umbrella".into();
        made_up.tenant_id = "not-a-guid".into();
        env.ddb
            .put_item()
            .table_name(&env.names.org_table)
            .item("company_id", AttributeValue::S("umbrella".into()))
            .item(
                "settings",
                AttributeValue::S(serde_json::to_string(&made_up).unwrap()),
            )
            .send()
            .await
            .unwrap();
        let e = table.get("umbrella").await.unwrap_err().to_string();
        assert!(e.contains("umbrella") && e.contains("tenant_id"), "{e}");
        // The functions' read refuses it the same way: it is never used for a run.
        let e = env
            .intake
            .store
            .org_settings("umbrella")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("umbrella") && e.contains("tenant_id"), "{e}");

        // Valid settings of one company under another's key are not that company's.
        env.ddb
            .put_item()
            .table_name(&env.names.org_table)
            .item("company_id", AttributeValue::S("globex".into()))
            .item(
                "settings",
                AttributeValue::S(serde_json::to_string(&acme).unwrap()),
            )
            .send()
            .await
            .unwrap();
        for e in [
            table.get("globex").await.unwrap_err().to_string(),
            env.intake
                .store
                .org_settings("globex")
                .await
                .unwrap_err()
                .to_string(),
        ] {
            assert!(e.contains("'globex'") && e.contains("company_id"), "{e}");
        }
    }
}
