//! `switchyard lineage show` and `lineage query` on a store registered with the real CLI and
//! lineage records written through the store API, as the gateway would write them.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use model_store::{LineageRecord, ModelStore};
use serde_json::{Value, json};

use crate::support::{bin, fixtures, register};

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run switchyard")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "switchyard failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("utf8 stdout")
}

/// A failure: non-zero exit, one `error:` line on stderr, no panic. Returns stderr.
fn failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a failure; stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.trim_start().starts_with("error: "), "{err}");
    err
}

fn ms(moment: SystemTime) -> i64 {
    i64::try_from(moment.duration_since(UNIX_EPOCH).expect("after 1970").as_millis()).expect("fits")
}

/// Writes `records` into the store in one batch, from a small runtime as the CLI uses.
fn insert(store: &Path, records: &[LineageRecord]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = ModelStore::open(store).await.expect("open store");
        store.registry().insert_lineage(records).await.expect("insert lineage");
    });
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: String,
    v1_sha: String,
    /// When the query records start; `req-1` is 10 s after registration, before this.
    since: SystemTime,
    /// The records `query --model mlp --since <since>` must print, in order.
    after_since: Vec<LineageRecord>,
}

/// mlp v1 (with manifest) and v2 registered; `req-1` answered by v1 with a v2 shadow run; more
/// mlp records before and after `since`, one of another model, inserted out of time order.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let v1 = register(&store, "mlp", "mlp_v1", Some("mlp_v1"));
    let v2 = register(&store, "mlp", "mlp_v2", None);
    let v1_sha = v1["sha256"].as_str().expect("sha256").to_owned();
    let v2_sha = v2["sha256"].as_str().expect("sha256").to_owned();
    // After registration, so the `registered` event is in req-1's history.
    let t0 = SystemTime::now();
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    let record = |id: &str, version: u32, sha: &str, secs: u64| {
        LineageRecord::new(id, "mlp", version, sha, LineageRecord::ROUTE_CHAMPION, "champion alias")
            .stamped_at(at(secs))
    };

    let mut primary =
        LineageRecord::new("req-1", "mlp", 1, &v1_sha, "challenger", "weight bucket 37 of 100").stamped_at(at(10));
    primary.sticky_key_hash = Some("9f2c04aa".to_owned());
    primary.queue_us = 120;
    primary.compute_us = 800;
    primary.total_us = 1_000;
    let mut shadow = LineageRecord::new("req-1", "mlp", 2, &v2_sha, LineageRecord::ROUTE_SHADOW, "shadow of champion")
        .stamped_at(at(10));
    shadow.shadow_of = Some(1);
    shadow.comparison = Some(json!({ "max_abs_diff": 0.002, "argmax_agree": true }));

    let old = record("req-old", 1, &v1_sha, 0).stamped_at(t0 - Duration::from_secs(3 * 3600));
    let b = record("req-b", 1, &v1_sha, 20);
    let c = record("req-c", 2, &v2_sha, 30);
    let d = record("req-d", 1, &v1_sha, 40);
    let mut other = record("req-other", 1, &v1_sha, 25);
    other.model = "other".to_owned();

    insert(&store, &[d.clone(), old, primary, shadow, other, b.clone(), c.clone()]);
    Fixture {
        _dir: dir,
        store: store.to_str().expect("utf8").to_owned(),
        v1_sha,
        since: at(15),
        after_since: vec![b, c, d],
    }
}

/// Parses `query` output: one LineageRecord per line.
fn records(text: &str) -> Vec<LineageRecord> {
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
}

#[test]
fn show_prints_the_chain_as_json_and_for_people() {
    let f = fixture();
    let chain: Value =
        serde_json::from_str(&stdout(&run(&["lineage", "show", "req-1", "--json", "--store", &f.store])))
            .expect("one JSON object");
    let records = chain["records"].as_array().expect("records");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["request_id"], "req-1");
    assert_eq!(records[0]["route"], "challenger");
    assert_eq!(records[0]["sha256"], f.v1_sha.as_str());
    assert_eq!(records[1]["route"], "shadow");
    assert_eq!(records[1]["shadow_of"], 1);
    assert_eq!(records[1]["comparison"]["argmax_agree"], true);
    assert_eq!(chain["version"]["version"], 1);
    assert_eq!(chain["version"]["sha256"], f.v1_sha.as_str());
    let manifest = std::fs::read_to_string(fixtures().join("manifests/mlp_v1.toml")).expect("manifest");
    let commit = chain["provenance"]["training"]["code_commit"].as_str().expect("commit recorded");
    assert!(manifest.contains(&format!("code_commit = \"{commit}\"")), "{commit}");
    let events = chain["events"].as_array().expect("events");
    assert!(events.iter().any(|e| e["kind"] == "registered"), "{events:?}");

    let text = stdout(&run(&["lineage", "show", "req-1", "--store", &f.store]));
    for expected in [
        "request:     req-1",
        "model:       mlp:1",
        f.v1_sha.as_str(),
        "challenger (weight bucket 37 of 100)",
        "9f2c04aa",
        "queue 120 µs, compute 800 µs, total 1000 µs",
        "stage:      staging",
        commit,
        "snap-2026-10-01-0412",
        "learning_rate = 0.001",
        "auc = 0.874",
        "registered",
        "shadow runs:",
        "mlp:2 (shadowing version 1)",
        "argmax_agree",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn show_of_an_unknown_request_names_it() {
    let f = fixture();
    for extra in [None, Some("--json")] {
        let mut args = vec!["lineage", "show", "req-nope", "--store", f.store.as_str()];
        args.extend(extra);
        let out = run(&args);
        let err = failure(&out);
        assert!(err.contains("no lineage record for request 'req-nope'"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn query_prints_json_lines_oldest_first() {
    let f = fixture();
    let since = ms(f.since).to_string();
    let text = stdout(&run(&["lineage", "query", "--store", &f.store, "--model", "mlp", "--since", &since]));
    assert_eq!(text.lines().count(), 3, "{text}");
    assert_eq!(records(&text), f.after_since);

    // --until (RFC 3339, as the records print it) and --version narrow it; --limit keeps the oldest.
    let until = f.after_since[1].at.clone();
    let both = vec!["lineage", "query", "--store", f.store.as_str(), "--model", "mlp"];
    let both = [both, vec!["--since", since.as_str(), "--until", until.as_str()]].concat();
    assert_eq!(records(&stdout(&run(&both))), f.after_since[..2]);
    let v1 = [both.clone(), vec!["--version", "1"]].concat();
    assert_eq!(records(&stdout(&run(&v1))), f.after_since[..1]);
    let limited = [both.clone(), vec!["--limit", "1"]].concat();
    assert_eq!(records(&stdout(&run(&limited))), f.after_since[..1]);

    // Relative: the last two hours hold req-1 (primary, then its shadow) and the three after it.
    let recent = records(&stdout(&run(&["lineage", "query", "--store", &f.store, "--model", "mlp", "--since", "2h"])));
    let ids: Vec<(&str, &str)> = recent.iter().map(|r| (r.request_id.as_str(), r.route.as_str())).collect();
    assert_eq!(
        ids,
        [
            ("req-1", "challenger"),
            ("req-1", "shadow"),
            ("req-b", "champion"),
            ("req-c", "champion"),
            ("req-d", "champion")
        ]
    );
}

#[test]
fn query_refuses_bad_ranges_and_times_clearly() {
    let f = fixture();
    let since = ms(f.since);
    let (since, until) = (since.to_string(), (since - 1000).to_string());
    let err = failure(&run(&[
        "lineage", "query", "--store", &f.store, "--model", "mlp", "--since", &since, "--until", &until,
    ]));
    assert!(err.contains(&format!("--since \"{since}\"")) && err.contains("is after --until"), "{err}");
    let err =
        failure(&run(&["lineage", "query", "--store", &f.store, "--model", "mlp", "--since", "1h", "--until", "2h"]));
    assert!(err.contains("--since \"1h\"") && err.contains("is after --until \"2h\""), "{err}");

    let err = failure(&run(&["lineage", "query", "--store", &f.store, "--model", "mlp", "--limit", "0"]));
    assert!(err.contains("limit 0"), "{err}");

    let err = failure(&run(&["lineage", "query", "--store", &f.store, "--model", "mlp", "--since", "last tuesday"]));
    assert!(err.contains("\"last tuesday\"") && err.contains("RFC 3339") && err.contains("unix milliseconds"), "{err}");

    let out = run(&["lineage", "query", "--store", &f.store]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--model"));
}

#[test]
fn a_missing_store_is_refused_and_not_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-store");
    let path = missing.to_str().expect("utf8");
    for args in
        [vec!["lineage", "show", "req-1", "--store", path], vec!["lineage", "query", "--store", path, "--model", "mlp"]]
    {
        let err = failure(&run(&args));
        assert!(err.contains("is not a model store"), "{err}");
        assert!(!missing.exists(), "the store directory must not be created");
    }
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let f = fixture();
    let mut child = Command::new(bin())
        .args(["lineage", "query", "--store", &f.store, "--model", "mlp", "--since", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchyard");
    // Close the read end at once, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A typo'd model or a version the store lacks is an error, not an empty answer; `--format
/// table` prints a line per record for people, `--json` the export format.
#[test]
fn query_names_what_does_not_exist_and_prints_a_table_for_people() {
    let f = fixture();
    let err = failure(&run(&["lineage", "query", "--store", &f.store, "--model", "mpl"]));
    assert!(err.contains("mpl"), "{err}");
    let err = failure(&run(&["lineage", "query", "--store", &f.store, "--model", "mlp", "--version", "7"]));
    assert!(err.contains('7'), "{err}");
    let table = stdout(&run(&["lineage", "query", "--store", &f.store, "--model", "mlp", "--format", "table"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("at ") && lines[0].contains("request id"), "{table}");
    assert!(lines.iter().any(|l| l.contains("req-b") && l.contains("champion alias")), "{table}");
    assert!(!table.contains('{'), "no JSON in the table: {table}");
    let json = stdout(&run(&["lineage", "query", "--store", &f.store, "--model", "mlp", "--json"]));
    assert_eq!(records(&json).len(), lines.len() - 1, "the same records either way");
    // The store from the environment, as every --store.
    let from_env = Command::new(bin())
        .env("SWITCHYARD_STORE", &f.store)
        .args(["lineage", "query", "--model", "mlp", "--json"])
        .output()
        .expect("run");
    assert_eq!(stdout(&from_env), json);
}
