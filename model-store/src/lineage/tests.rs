//! Tests of lineage storage: batches (round trip, atomicity, size), chains, queries, counts,
//! reopening, and upgrading a registry created before lineage existed.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use super::*;
use crate::registry::{MIGRATOR, Stage};
use crate::tests::{new_version, register, signature, temp_store};
use crate::{Manifest, ModelStore};

const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A primary record with every optional field set, so round trips cover them all.
fn primary(request_id: &str, model: &str, version: u32) -> LineageRecord {
    let mut record = LineageRecord::new(request_id, model, version, SHA, LineageRecord::ROUTE_CHALLENGER, "bucket 37");
    record.sticky_key_hash = Some("9f2c01".into());
    record.input_sha256 = Some("b".repeat(64));
    record.queue_us = 120;
    record.compute_us = 3_400;
    record.total_us = 3_900;
    record.error_class = Some("none".into());
    record
}

fn shadow(request_id: &str, model: &str, version: u32, of: u32) -> LineageRecord {
    let mut record = LineageRecord::new(request_id, model, version, SHA, LineageRecord::ROUTE_SHADOW, "shadow 10%");
    record.shadow_of = Some(of);
    record.comparison = Some(json!({"max_abs_diff": 0.0025, "argmax_agree": true, "outputs": ["y"]}));
    record.status = 504;
    record.error_class = Some("timeout".into());
    record
}

/// A record of `model` v`version` stamped `ms` milliseconds after the epoch.
fn at_ms(request_id: &str, model: &str, version: u32, ms: u64) -> LineageRecord {
    LineageRecord::new(request_id, model, version, SHA, LineageRecord::ROUTE_DEFAULT, "default")
        .stamped_at(UNIX_EPOCH + Duration::from_millis(ms))
}

fn ids(records: &[LineageRecord]) -> Vec<&str> {
    records.iter().map(|record| record.request_id.as_str()).collect()
}

#[tokio::test]
async fn a_batch_reads_back_equal_with_the_primary_first() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    let first_shadow = shadow("req-1", "mlp", 3, 2);
    let main = primary("req-1", "mlp", 2);
    let second_shadow = shadow("req-1", "mlp", 4, 2);
    let other = primary("req-2", "mlp", 2);
    // Shadows written before the primary still read back after it.
    let batch = [first_shadow.clone(), main.clone(), other.clone(), second_shadow.clone()];
    assert_eq!(registry.insert_lineage(&batch).await.expect("insert"), 4);

    let read = registry.lineage("req-1").await.expect("read");
    assert_eq!(read, [main.clone(), first_shadow, second_shadow]);
    assert!(!read[0].is_shadow() && read[1].is_shadow());
    assert_eq!(registry.lineage("req-2").await.expect("read"), [other]);
    assert!(registry.lineage("req-3").await.expect("absent").is_empty());

    // The stored time is the registry's format, and the record survives JSON too.
    assert_eq!(main.at.len(), "2024-05-02T10:30:00.123Z".len());
    let parsed = humantime::parse_rfc3339(&main.at).expect("rfc 3339");
    assert_eq!(parsed.duration_since(UNIX_EPOCH).expect("after epoch").as_millis(), main.at_ms as u128);
    let json = serde_json::to_string(&main).expect("serialize");
    assert_eq!(serde_json::from_str::<LineageRecord>(&json).expect("deserialize"), main);
}

#[tokio::test]
async fn a_thousand_records_go_in_one_batch() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    let batch = |round: usize| -> Vec<LineageRecord> {
        (0..1000)
            .map(|i| match i % 10 {
                9 => shadow(&format!("{round}-{}", i - 1), "mlp", 2, 1),
                _ => primary(&format!("{round}-{i}"), "mlp", 1),
            })
            .collect()
    };
    // Printed, not asserted (run with --nocapture): the first batch of a fresh store prepares
    // its statements and grows the WAL; the others show the steady state.
    for round in 0..3 {
        let records = batch(round);
        let started = Instant::now();
        let written = registry.insert_lineage(&records).await.expect("insert");
        let ms = started.elapsed().as_secs_f64() * 1e3;
        println!("insert_lineage: 1,000 records in {ms:.1} ms (batch {})", round + 1);
        assert_eq!(written, 1000);
        // Request ids go in 32 to a statement, the last 8 one by one: both read back whole.
        assert_eq!(registry.lineage(&format!("{round}-508")).await.expect("read"), records[508..510]);
        assert_eq!(registry.lineage(&format!("{round}-998")).await.expect("read"), records[998..]);
    }
    assert_eq!(registry.count_lineage(None, false).await.expect("count"), 3000);
    assert_eq!(registry.count_lineage(None, true).await.expect("count"), 2700);
}

#[tokio::test]
async fn a_refused_record_fails_its_whole_batch() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    registry.insert_lineage(&[primary("before", "mlp", 1)]).await.expect("a good batch");

    // The bad record is refused wherever it is in the batch, and nothing of the batch is kept.
    for bad in [0, 1100, 1199] {
        let mut batch: Vec<_> = (0..1200).map(|i| primary(&format!("torn-{i}"), "mlp", 1)).collect();
        batch[bad].status = 0;
        let err = registry.insert_lineage(&batch).await.expect_err("status 0 is refused");
        match &err {
            StoreError::InvalidLineageRecord { request_id, reason } => {
                assert_eq!(request_id, &format!("torn-{bad}"));
                assert!(reason.contains("status 0"), "{reason}");
            }
            other => panic!("expected the record to be refused, got {other:?}"),
        }
        assert_eq!(registry.count_lineage(None, false).await.expect("count"), 1, "nothing of the batch");
        assert!(registry.lineage("torn-0").await.expect("read").is_empty());
    }

    let mut first_bad = vec![primary("x", "mlp", 1), primary("y", "mlp", 1)];
    first_bad[0].status = 600;
    assert!(registry.insert_lineage(&first_bad).await.is_err());
    assert_eq!(registry.count_lineage(None, false).await.expect("count"), 1);

    // The connection is not left inside a broken transaction.
    registry.insert_lineage(&[primary("after", "mlp", 1)]).await.expect("a good batch after");
    assert_eq!(registry.count_lineage(None, false).await.expect("count"), 2);
}

#[tokio::test]
async fn an_empty_batch_does_not_touch_the_database() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    // With the database file gone, anything that opened it would fail (the appender never
    // creates the file).
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", registry.path().display()));
    }
    assert_eq!(registry.insert_lineage(&[]).await.expect("empty"), 0);
    assert!(registry.insert_lineage(&[primary("r", "mlp", 1)]).await.is_err());
}

#[tokio::test]
async fn an_appender_commits_with_the_durability_asked_for() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    for (durability, level, id) in [(LineageDurability::Full, 2, "full"), (LineageDurability::Normal, 1, "normal")] {
        let mut appender = registry.lineage_appender(durability).expect("open");
        let synchronous: i64 = appender.conn.pragma_query_value(None, "synchronous", |row| row.get(0)).expect("pragma");
        assert_eq!(synchronous, level, "{durability:?}");
        let record = primary(id, "mlp", 1);
        assert_eq!(appender.append(std::slice::from_ref(&record)).expect("append"), 1);
        assert_eq!(registry.lineage(id).await.expect("read"), [record]);
    }
}

#[tokio::test]
async fn a_chain_shows_the_version_its_provenance_and_its_history_up_to_the_request() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    let manifest = Manifest::from_toml_str("description = \"scorer\"\n[metrics]\nauc = 0.91\n").expect("manifest");
    let mut first = new_version("mlp", b"v1 bytes");
    first.manifest = Some(manifest.clone());
    let v1 = store.register(first).await.expect("register").version;
    register(&store, "mlp", b"v2 bytes").await;
    registry.set_alias("mlp", "champion", 1, "ops").await.expect("alias");
    registry.set_stage("mlp", 1, Stage::Production, "ops").await.expect("stage");
    registry.record_event("mlp", Some(1), "promoted", json!({"from": 2}), "guard").await.expect("event");

    let mut main = LineageRecord::new("req", "mlp", 1, &v1.sha256, LineageRecord::ROUTE_CHAMPION, "champion alias");
    main.total_us = 800;
    let side = shadow("req", "mlp", 2, 1);
    registry.insert_lineage(&[side.clone(), main.clone()]).await.expect("insert");

    // History after the request is not part of its chain.
    tokio::time::sleep(Duration::from_millis(5)).await;
    registry.set_stage("mlp", 1, Stage::Archived, "ops").await.expect("archive");
    registry.record_event("mlp", Some(1), "rolled_back", json!({}), "guard").await.expect("event");

    let chain = registry.lineage_chain("req").await.expect("chain");
    assert_eq!(chain.records, [main, side]);
    let version = chain.version.expect("v1 is registered");
    assert_eq!((version.model.as_str(), version.version), ("mlp", 1));
    assert_eq!(version.sha256, v1.sha256);
    assert_eq!(version.stage, Stage::Archived, "the version as it is now");
    assert_eq!(version.aliases, ["champion"]);
    assert_eq!(chain.provenance, Some(manifest));
    let kinds: Vec<_> = chain.events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, ["registered", "alias_set", "stage_changed", "promoted"]);
    assert!(chain.events.iter().all(|event| event.version == Some(1)));
    assert_eq!(chain.events[0].detail["sha256"], v1.sha256);
    assert_eq!(chain.events[2].detail, json!({"from": "staging", "to": "production"}));
    let json = serde_json::to_value(registry.lineage_chain("req").await.expect("chain")).expect("serialize");
    assert_eq!(json["records"][0]["route"], "champion");
    assert_eq!(json["version"]["stage"], "archived");
}

#[tokio::test]
async fn a_chain_of_a_version_not_in_the_registry_keeps_its_records() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    register(&store, "mlp", b"only v1").await;
    let ghost = primary("ghost-model", "ghost", 7);
    let missing_version = primary("ghost-version", "mlp", 9);
    registry.insert_lineage(&[ghost.clone(), missing_version.clone()]).await.expect("insert");
    for (request, record) in [("ghost-model", ghost), ("ghost-version", missing_version)] {
        let chain = registry.lineage_chain(request).await.expect("chain");
        assert_eq!(chain.records, [record]);
        assert!(chain.version.is_none() && chain.provenance.is_none() && chain.events.is_empty(), "{chain:?}");
    }
}

#[tokio::test]
async fn a_chain_of_an_unknown_request_is_lineage_not_found() {
    let (_dir, store) = temp_store().await;
    store.registry().insert_lineage(&[primary("known", "mlp", 1)]).await.expect("insert");
    let err = store.registry().lineage_chain("unknown").await.expect_err("absent");
    assert!(matches!(&err, StoreError::LineageNotFound { request_id } if request_id == "unknown"));
    assert_eq!(err.to_string(), "no lineage record for request 'unknown'");
}

#[tokio::test]
async fn queries_filter_by_model_version_and_time_in_time_order() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    // Written out of time order; `a2` and `a3` share a millisecond and keep insertion order.
    let batch = [
        at_ms("a3", "a", 1, 3_000),
        at_ms("b1", "b", 1, 1_500),
        at_ms("a1", "a", 1, 1_000),
        at_ms("a2", "a", 2, 3_000),
        at_ms("a4", "a", 2, 4_000),
        at_ms("b2", "b", 2, 5_000),
    ];
    registry.insert_lineage(&batch).await.expect("insert");
    let query = |q: LineageQuery| async move { registry.query_lineage(&q).await.expect("query") };
    let model = |name: &str| Some(name.to_owned());

    assert_eq!(ids(&query(LineageQuery::default()).await), ["a1", "b1", "a3", "a2", "a4", "b2"]);
    assert_eq!(
        ids(&query(LineageQuery { model: model("a"), ..LineageQuery::default() }).await),
        ["a1", "a3", "a2", "a4"]
    );
    let v2 = query(LineageQuery { model: model("a"), version: Some(2), ..LineageQuery::default() }).await;
    assert_eq!(ids(&v2), ["a2", "a4"]);
    assert_eq!(v2[0], batch[3]);
    // Both bounds are inclusive.
    let range = LineageQuery { since_ms: Some(1_500), until_ms: Some(4_000), ..LineageQuery::default() };
    assert_eq!(ids(&query(range.clone()).await), ["b1", "a3", "a2", "a4"]);
    assert_eq!(ids(&query(LineageQuery { limit: Some(2), ..range }).await), ["b1", "a3"]);
    let one_instant = LineageQuery { since_ms: Some(3_000), until_ms: Some(3_000), ..LineageQuery::default() };
    assert_eq!(ids(&query(one_instant).await), ["a3", "a2"]);
    let since = LineageQuery { model: model("b"), since_ms: Some(1_501), ..LineageQuery::default() };
    assert_eq!(ids(&query(since).await), ["b2"]);
    let until = LineageQuery { until_ms: Some(999), ..LineageQuery::default() };
    assert!(query(until).await.is_empty());
    assert!(query(LineageQuery { model: model("c"), ..LineageQuery::default() }).await.is_empty());
}

#[tokio::test]
async fn queries_have_a_default_and_a_maximum_limit() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    let batch: Vec<_> = (0..1005).map(|i| at_ms(&format!("r{i}"), "mlp", 1, 10_000 + i)).collect();
    registry.insert_lineage(&batch).await.expect("insert");
    let all = registry.query_lineage(&LineageQuery::default()).await.expect("default limit");
    assert_eq!(all.len(), 1000);
    assert_eq!((all[0].request_id.as_str(), all[999].request_id.as_str()), ("r0", "r999"));
    let max = LineageQuery { limit: Some(LineageQuery::MAX_LIMIT), ..LineageQuery::default() };
    assert_eq!(registry.query_lineage(&max).await.expect("max limit").len(), 1005);
}

#[tokio::test]
async fn invalid_queries_are_refused_saying_why() {
    let (_dir, store) = temp_store().await;
    let refused = [
        (
            LineageQuery { since_ms: Some(10), until_ms: Some(9), ..LineageQuery::default() },
            "since_ms 10 is after until_ms 9",
        ),
        (LineageQuery { limit: Some(0), ..LineageQuery::default() }, "limit 0 is outside 1..=100000"),
        (LineageQuery { limit: Some(100_001), ..LineageQuery::default() }, "limit 100001"),
        (LineageQuery { version: Some(3), ..LineageQuery::default() }, "without a model"),
    ];
    for (query, expected) in refused {
        match store.registry().query_lineage(&query).await {
            Err(err @ StoreError::InvalidQuery { .. }) => {
                let message = err.to_string();
                assert!(message.starts_with("invalid lineage query: ") && message.contains(expected), "{message}");
            }
            other => panic!("{query:?} was not refused: {other:?}"),
        }
    }
}

#[tokio::test]
async fn counts_by_model_and_primary_only() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    assert_eq!(registry.count_lineage(None, false).await.expect("count"), 0);
    let batch = [
        primary("1", "a", 1),
        shadow("1", "a", 2, 1),
        shadow("1", "a", 3, 1),
        primary("2", "a", 1),
        primary("3", "b", 1),
        shadow("3", "b", 2, 1),
    ];
    registry.insert_lineage(&batch).await.expect("insert");
    let count = |model: Option<&'static str>, primary_only| async move {
        registry.count_lineage(model, primary_only).await.expect("count")
    };
    assert_eq!(count(None, false).await, 6);
    assert_eq!(count(None, true).await, 3);
    assert_eq!(count(Some("a"), false).await, 4);
    assert_eq!(count(Some("a"), true).await, 2);
    assert_eq!(count(Some("b"), true).await, 1);
    assert_eq!(count(Some("c"), false).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_from_two_stores_lose_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = ModelStore::open(dir.path()).await.expect("open");
    let second = ModelStore::open(dir.path()).await.expect("open twice");
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = if task % 2 == 0 { first.clone() } else { second.clone() };
            tokio::spawn(async move {
                for batch in 0..10 {
                    let records: Vec<_> = (0..100).map(|i| primary(&format!("{task}-{batch}-{i}"), "mlp", 1)).collect();
                    assert_eq!(store.registry().insert_lineage(&records).await.expect("insert"), 100);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(second.registry().count_lineage(Some("mlp"), true).await.expect("count"), 8_000);
}

#[tokio::test]
async fn reopening_keeps_lineage_and_applies_the_migration_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = primary("kept", "mlp", 1);
    {
        let store = ModelStore::open(dir.path()).await.expect("open");
        store.registry().insert_lineage(std::slice::from_ref(&record)).await.expect("insert");
    }
    for _ in 0..2 {
        let store = ModelStore::open(dir.path()).await.expect("reopen");
        assert_eq!(store.registry().lineage("kept").await.expect("read"), std::slice::from_ref(&record));
        assert_eq!(applied_migrations(store.registry()).await, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
}

#[tokio::test]
async fn a_registry_created_before_lineage_upgrades_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteConnectOptions::new().filename(dir.path().join("registry.db")).create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.expect("pool");
    MIGRATOR.run_to(1, &pool).await.expect("schema 0001 only");
    // A version registered by the code of schema 0001, written as that code wrote it.
    let at = "2024-05-02T10:30:00.123Z";
    for statement in [
        format!("INSERT INTO models (id, name, created_at, created_ms) VALUES (1, 'old', '{at}', 1714645800123)"),
        format!(
            "INSERT INTO versions (model_id, number, sha256, size, signature_json, stage, created_at, created_ms) \
             VALUES (1, 1, '{SHA}', 3, '{}', 'production', '{at}', 1714645800123)",
            serde_json::to_string(&signature()).expect("signature")
        ),
        format!(
            "INSERT INTO events (model_id, version_number, kind, detail_json, actor, at, at_ms) \
             VALUES (1, 1, 'registered', '{{}}', 'old code', '{at}', 1714645800123)"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&pool).await.expect("seed");
    }
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'lineage'").fetch_all(&pool).await.expect("q");
    assert!(tables.is_empty(), "0001 alone has no lineage table");
    pool.close().await;

    let store = ModelStore::open(dir.path()).await.expect("open upgrades");
    let registry = store.registry();
    assert_eq!(applied_migrations(registry).await, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(registry.version("old", 1).await.expect("kept").stage, Stage::Production);
    let record = primary("after-upgrade", "old", 1).stamped_at(SystemTime::now());
    registry.insert_lineage(std::slice::from_ref(&record)).await.expect("insert");
    let chain = registry.lineage_chain("after-upgrade").await.expect("chain");
    assert_eq!(chain.records, [record]);
    assert_eq!(chain.version.expect("old v1").sha256, SHA);
    assert_eq!(chain.events.len(), 1);
    assert_eq!(chain.events[0].actor, "old code");
}

async fn applied_migrations(registry: &Registry) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(registry.pool())
        .await
        .expect("migrations table")
}

/// A primary record of `model` v`version` on `route`, ending in `status` after `total_us`,
/// stamped `ms` after the epoch.
fn served(id: &str, model: &str, version: u32, route: &str, status: u16, total_us: u64, ms: u64) -> LineageRecord {
    let mut record = at_ms(id, model, version, ms);
    record.route = route.to_owned();
    record.status = status;
    record.total_us = total_us;
    record
}

#[test]
fn nearest_rank_is_the_ceiling_rank_counted_from_zero() {
    assert_eq!(nearest_rank(0, 50), None);
    assert_eq!(nearest_rank(0, 99), None);
    for (n, percent, rank) in [(1, 50, 0), (1, 99, 0), (3, 50, 1), (10, 50, 4), (10, 99, 9), (100, 50, 49)] {
        assert_eq!(nearest_rank(n, percent), Some(rank), "n {n} p{percent}");
    }
    assert_eq!(nearest_rank(100, 99), Some(98));
    assert_eq!(nearest_rank(200, 99), Some(197));
    assert_eq!(nearest_rank(1000, 100), Some(999));
}

#[tokio::test]
async fn stats_count_errors_and_routes_and_read_percentiles_of_one_version() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    // mlp v2: 100 answered requests, total_us 10, 20, … 1000 written in a scrambled order; 70 on
    // the champion route, 30 as challenger; 7 server errors (500, 503) and 3 client errors (404).
    let mut batch: Vec<LineageRecord> = (1..=100u64)
        .map(|i| {
            let k = (i * 37) % 100 + 1; // a permutation of 1..=100
            let route = if k <= 70 { LineageRecord::ROUTE_CHAMPION } else { LineageRecord::ROUTE_CHALLENGER };
            let status = match k {
                1..=5 => 500,
                6 | 7 => 503,
                8..=10 => 404,
                _ => 200,
            };
            served(&format!("r{k}"), "mlp", 2, route, status, k * 10, 1_000 + k)
        })
        .collect();
    // Noise that must not count: shadow runs of v2 (slow, failing), other versions and models.
    for i in 0..3 {
        let mut s = shadow(&format!("r{i}"), "mlp", 2, 1);
        s.total_us = 9_000_000;
        batch.push(s);
    }
    batch.push(served("v1", "mlp", 1, LineageRecord::ROUTE_CHAMPION, 500, 5_000_000, 500));
    batch.push(served("o2", "other", 2, LineageRecord::ROUTE_CHAMPION, 503, 7_000_000, 5_000));
    registry.insert_lineage(&batch).await.expect("insert");

    let stats = registry.lineage_stats("mlp", 2).await.expect("stats");
    assert_eq!((stats.requests, stats.errors, stats.client_errors, stats.shadow_runs), (100, 7, 3, 3));
    assert_eq!(stats.error_rate, Some(7.0 / 97.0), "the client's 404s are not the version's errors");
    assert_eq!(stats.routes, BTreeMap::from([("challenger".to_owned(), 30), ("champion".to_owned(), 70)]));
    // Nearest rank: the 50th and 99th smallest of 10, 20, … 1000.
    assert_eq!((stats.p50_us, stats.p99_us), (Some(500), Some(990)));
    assert_eq!(stats.first_at.as_deref(), Some("1970-01-01T00:00:01.001Z"));
    assert_eq!(stats.last_at.as_deref(), Some("1970-01-01T00:00:01.100Z"));

    // One request: both percentiles are that request.
    let one = registry.lineage_stats("mlp", 1).await.expect("stats");
    assert_eq!((one.requests, one.errors, one.error_rate), (1, 1, Some(1.0)));
    assert_eq!((one.p50_us, one.p99_us), (Some(5_000_000), Some(5_000_000)));
    assert_eq!(one.routes, BTreeMap::from([("champion".to_owned(), 1)]));
}

#[tokio::test]
async fn stats_of_a_version_that_never_served_measure_nothing() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    let empty = registry.lineage_stats("mlp", 1).await.expect("empty store");
    assert_eq!(empty, LineageStats::default());
    assert_eq!((empty.error_rate, empty.p50_us, empty.p99_us, empty.first_at), (None, None, None, None));

    // Only shadow runs: still no traffic served, but the shadow runs are counted.
    registry.insert_lineage(&[shadow("a", "mlp", 3, 1), shadow("b", "mlp", 3, 1)]).await.expect("insert");
    let shadowed = registry.lineage_stats("mlp", 3).await.expect("stats");
    assert_eq!((shadowed.requests, shadowed.errors, shadowed.shadow_runs), (0, 0, 2));
    assert!(shadowed.routes.is_empty());
    assert_eq!((shadowed.error_rate, shadowed.p50_us, shadowed.p99_us), (None, None, None));
    assert_eq!((shadowed.first_at, shadowed.last_at), (None, None));
}

#[test]
fn a_record_stamped_at_a_moment_is_the_same_whichever_way_it_is_built() {
    let moment = UNIX_EPOCH + Duration::from_micros(1_500_900);
    let direct = LineageRecord::new_at(moment, "r", "mlp", 1, SHA, LineageRecord::ROUTE_CHAMPION, "why");
    assert_eq!((direct.at.as_str(), direct.at_ms), ("1970-01-01T00:00:01.500Z", 1500));
    let restamped = LineageRecord::new("r", "mlp", 1, SHA, LineageRecord::ROUTE_CHAMPION, "why").stamped_at(moment);
    assert_eq!(direct, restamped);
}

#[tokio::test]
async fn odd_request_ids_and_an_id_reused_in_one_batch_read_back_whole() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    // JSON-hostile ids are stored and matched exactly; a client reusing its own id gets both
    // records (in write order), not a refused batch.
    let odd = ["quote\"and\\backslash", "ünïcødé ✓", "comma,[bracket]", "line\nbreak", "   "];
    let mut batch: Vec<_> = odd.iter().map(|id| primary(id, "mlp", 1)).collect();
    let mut again = primary("reused", "mlp", 1);
    again.reason = "second".into();
    batch.extend([primary("reused", "mlp", 1), again]);
    // Several models and versions in one batch: one row each, all in the same transaction.
    batch.push(shadow("reused", "mlp", 2, 1));
    batch.push(primary("other-model", "encoder", 7));
    registry.insert_lineage(&batch).await.expect("insert");

    for (i, id) in odd.iter().enumerate() {
        assert_eq!(registry.lineage(id).await.expect("read"), batch[i..=i], "{id:?}");
    }
    assert_eq!(registry.lineage("reused").await.expect("read"), batch[5..8]);
    assert_eq!(registry.lineage("other-model").await.expect("read"), batch[8..]);
    assert_eq!(registry.count_lineage(None, false).await.expect("count"), 9);
    assert_eq!(registry.count_lineage(Some("mlp"), true).await.expect("count"), 7);
    let batch_rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM lineage_batches").fetch_one(registry.pool()).await.expect("rows");
    assert_eq!(batch_rows, 3, "mlp v1, mlp v2 and encoder v7");
}

#[tokio::test]
async fn a_group_larger_than_a_row_spans_rows_and_reads_back_in_order() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    let batch: Vec<_> = (0..2500).map(|i| at_ms(&format!("big-{i}"), "mlp", 1, 1_000_000 + i)).collect();
    registry.insert_lineage(&batch).await.expect("insert");
    let rows: Vec<i64> = sqlx::query_scalar("SELECT records FROM lineage_batches ORDER BY id")
        .fetch_all(registry.pool())
        .await
        .expect("rows");
    assert_eq!(rows, [1024, 1024, 452]);
    let all = registry.query_lineage(&LineageQuery { limit: Some(5000), ..LineageQuery::default() }).await.expect("q");
    assert_eq!(all, batch);
    assert_eq!(registry.lineage("big-2048").await.expect("read"), batch[2048..=2048]);
}

#[tokio::test]
async fn the_lineage_view_reads_what_the_queries_read() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    let mut batch =
        vec![primary("v-1", "mlp", 1), shadow("v-1", "mlp", 2, 1), at_ms("v-2", "mlp", 1, 1_714_645_800_123)];
    batch[0].prediction = Some(json!({"label": 3}));
    batch[2].sticky_key_hash = None;
    batch[0].slice = Some("eu-west".to_owned());
    batch[1].replica = Some("gw-2".to_owned());
    batch[2].upstream = Some(json!({"url": "http://127.0.0.1:9000", "model": "mlp", "version": "4"}));
    registry.insert_lineage(&batch).await.expect("insert");
    let later = primary("v-3", "encoder", 1);
    registry.insert_lineage(std::slice::from_ref(&later)).await.expect("insert");

    // What an operator reads from the `lineage` view (migration 0006) is what the store returns.
    let rows: Vec<LineageRow> = sqlx::query_as(
        "SELECT request_id, at, at_ms, model, version, sha256, route, reason, sticky_key_hash, input_sha256, \
         queue_us, compute_us, total_us, status, error_class, shadow_of, comparison_json, prediction_json, \
         upstream_json, slice, replica FROM lineage ORDER BY id",
    )
    .fetch_all(registry.pool())
    .await
    .expect("view");
    let from_view = rows.into_iter().map(LineageRecord::from_row).collect::<Result<Vec<_>, _>>().expect("decode");
    let mut written = batch.clone();
    written.push(later);
    // Write order: mlp v1's row (v-1, v-2), mlp v2's (the shadow), then the second batch.
    let expected = [written[0].clone(), written[2].clone(), written[1].clone(), written[3].clone()];
    assert_eq!(from_view.len(), 4);
    for (view, want) in from_view.iter().zip(&expected) {
        assert_eq!(view.request_id, want.request_id);
        assert_eq!(view.at, want.at, "the view derives `at` from `at_ms` as the registry formats it");
    }
    assert_eq!(from_view, expected);
}

#[tokio::test]
async fn rows_written_before_schema_6_are_kept_by_the_upgrade() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteConnectOptions::new().filename(dir.path().join("registry.db")).create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.expect("pool");
    MIGRATOR.run_to(5, &pool).await.expect("schema 0005");
    // Rows as schema 2–5 stored them: mlp v1 over two minutes, a shadow on v2, a reused id.
    let rows = [
        ("old-1", 1_714_645_800_123_i64, 1, "champion", 200, None, None, Some(r#"{"label":3}"#)),
        ("old-2", 1_714_645_800_999, 1, "challenger", 503, None, None, None),
        ("old-1", 1_714_645_800_124, 2, "shadow", 200, Some("1"), Some(r#"{"max_abs_diff":0.5}"#), None),
        ("old-3", 1_714_645_900_000, 1, "champion", 200, None, None, None),
        ("old-3", 1_714_645_900_001, 1, "champion", 200, None, None, None),
    ];
    for (id, ms, version, route, status, shadow_of, comparison, prediction) in rows {
        let at = Timestamp::at(UNIX_EPOCH + Duration::from_millis(ms as u64)).text;
        sqlx::query(
            "INSERT INTO lineage (request_id, at, at_ms, model, version, sha256, route, reason, sticky_key_hash, \
             input_sha256, queue_us, compute_us, total_us, status, error_class, shadow_of, comparison_json, \
             prediction_json) VALUES ($1, $2, $3, 'mlp', $4, $5, $6, 'why', 'k', NULL, 1, 2, 3, $7, NULL, $8, $9, $10)",
        )
        .bind(id)
        .bind(at)
        .bind(ms)
        .bind(version)
        .bind(SHA)
        .bind(route)
        .bind(status)
        .bind(shadow_of)
        .bind(comparison)
        .bind(prediction)
        .execute(&pool)
        .await
        .expect("seed");
    }
    // A busy minute of another model: more rows of one version than a batch row holds.
    let mut tx = pool.begin().await.expect("begin");
    for i in 0..2_500_i64 {
        sqlx::query(
            "INSERT INTO lineage (request_id, at, at_ms, model, version, sha256, route, reason, queue_us, \
             compute_us, total_us, status) VALUES ($1, '2024-05-02T10:31:00.000Z', $2, 'busy', 1, $3, \
             'champion', 'why', 0, 0, $4, 200)",
        )
        .bind(format!("busy-{i}"))
        .bind(1_714_645_860_000 + i / 100)
        .bind(SHA)
        .bind(i)
        .execute(&mut *tx)
        .await
        .expect("seed busy");
    }
    tx.commit().await.expect("commit");
    pool.close().await;

    let store = ModelStore::open(dir.path()).await.expect("open upgrades");
    let registry = store.registry();
    assert_eq!(applied_migrations(registry).await, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let busy_rows: Vec<i64> =
        sqlx::query_scalar("SELECT records FROM lineage_batches WHERE model = 'busy' ORDER BY id")
            .fetch_all(registry.pool())
            .await
            .expect("rows");
    assert_eq!(busy_rows, [1024, 1024, 452], "runs of at most 1024 rows each");
    for i in [0, 1023, 1024, 2047, 2048, 2499] {
        let read = registry.lineage(&format!("busy-{i}")).await.expect("read");
        assert_eq!((read.len(), read[0].total_us), (1, i as u64), "busy-{i}");
    }
    let busy_query = LineageQuery { model: Some("busy".into()), limit: Some(5000), ..LineageQuery::default() };
    let busy = registry.query_lineage(&busy_query).await.expect("query");
    assert_eq!(busy.iter().map(|r| r.total_us).collect::<Vec<_>>(), (0..2_500).collect::<Vec<u64>>());
    let old_1 = registry.lineage("old-1").await.expect("read");
    assert_eq!(old_1.len(), 2);
    assert_eq!((old_1[0].version, old_1[0].route.as_str()), (1, "champion"));
    assert_eq!(old_1[0].prediction, Some(json!({"label": 3})));
    assert_eq!(old_1[0].at, "2024-05-02T10:30:00.123Z");
    assert_eq!((old_1[1].version, old_1[1].shadow_of), (2, Some(1)));
    assert_eq!(old_1[1].comparison, Some(json!({"max_abs_diff": 0.5})));
    assert_eq!(registry.lineage("old-3").await.expect("read").len(), 2);
    assert_eq!(registry.count_lineage(Some("mlp"), false).await.expect("count"), 5);
    assert_eq!(registry.count_lineage(Some("mlp"), true).await.expect("count"), 4);
    let stats = registry.lineage_stats("mlp", 1).await.expect("stats");
    assert_eq!((stats.requests, stats.errors), (4, 1));
    assert_eq!(stats.first_at.as_deref(), Some("2024-05-02T10:30:00.123Z"));
    let mlp_query = LineageQuery { model: Some("mlp".into()), ..LineageQuery::default() };
    let all = registry.query_lineage(&mlp_query).await.expect("query");
    assert_eq!(
        all.iter().map(|r| (r.request_id.as_str(), r.at_ms)).collect::<Vec<_>>(),
        [
            ("old-1", 1_714_645_800_123),
            ("old-1", 1_714_645_800_124),
            ("old-2", 1_714_645_800_999),
            ("old-3", 1_714_645_900_000),
            ("old-3", 1_714_645_900_001)
        ]
    );
    // New records go in beside the converted ones.
    registry.insert_lineage(&[primary("new-1", "mlp", 1)]).await.expect("insert");
    assert_eq!(registry.count_lineage(Some("mlp"), false).await.expect("count"), 6);
}

#[tokio::test]
async fn limited_queries_over_many_overlapping_batches_match_a_full_sort() {
    // Arrival times of record `j` of batch `k`, all distinct: a permutation (every batch row's
    // range overlaps every other's), and nearly in order with each range reaching into the next
    // batch's (as the gateway writes: records go in as requests finish).
    let scattered = |k: u64, j: u64| 1_000 + ((k * 10 + j) * 37) % 300;
    let nearly_ordered = |k: u64, j: u64| 1_000 + k * 100 + (j * 37) % 130;
    for (layout, ms) in [("scattered", &scattered as &dyn Fn(u64, u64) -> u64), ("nearly ordered", &nearly_ordered)] {
        let (_dir, store) = temp_store().await;
        let registry = store.registry();
        let mut all = Vec::new();
        for k in 0..30 {
            let batch: Vec<_> = (0..10)
                .map(|j| {
                    let i = k * 10 + j;
                    at_ms(&format!("p-{i}"), "mlp", 1 + u32::from(i % 3 == 0), ms(k, j))
                })
                .collect();
            registry.insert_lineage(&batch).await.expect("insert");
            all.extend(batch);
        }
        let mlp = || Some("mlp".to_owned());
        let filters = [
            LineageQuery::default(),
            LineageQuery { model: mlp(), ..LineageQuery::default() },
            LineageQuery { model: mlp(), version: Some(2), ..LineageQuery::default() },
            LineageQuery { since_ms: Some(1_100), ..LineageQuery::default() },
            LineageQuery { until_ms: Some(2_200), ..LineageQuery::default() },
            LineageQuery {
                model: mlp(),
                version: Some(1),
                since_ms: Some(1_050),
                until_ms: Some(2_250),
                ..LineageQuery::default()
            },
        ];
        for filter in filters {
            let mut expected: Vec<&LineageRecord> = all
                .iter()
                .filter(|r| filter.model.as_deref().is_none_or(|m| r.model == m))
                .filter(|r| filter.version.is_none_or(|v| r.version == v))
                .filter(|r| filter.since_ms.is_none_or(|t| r.at_ms >= t))
                .filter(|r| filter.until_ms.is_none_or(|t| r.at_ms <= t))
                .collect();
            expected.sort_by_key(|r| r.at_ms);
            for limit in [1, 2, 7, 10, 33, 150, 1000] {
                let query = LineageQuery { limit: Some(limit), ..filter.clone() };
                let got = registry.query_lineage(&query).await.expect("query");
                let want: Vec<LineageRecord> = expected.iter().take(limit as usize).map(|r| (*r).clone()).collect();
                assert_eq!(ids(&got), ids(&want), "{layout}: {query:?}");
            }
        }
    }
}
