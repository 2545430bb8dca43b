//! What appending lineage costs the writer thread, per batch of records, in CPU time (the
//! fsync's wait is not counted: it is off the CPU): `LineageAppender::append` into the
//! registry (schema 6, a row per batch), beside a baseline that stores the same records as
//! schema 2–5 did (a row per record with three indexes, 32 rows to an `INSERT`), in one run; and
//! the same append with `durability = "normal"` (no fsync at commit), to show what the default's
//! fsync costs the writer's CPU (writing the dirty pages back is CPU time too, in the kernel).
//!
//! `cargo bench -p model-store --bench append`. Results: `benches/results/micro.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use model_store::{LineageDurability, LineageRecord, ModelStore};
use rusqlite::{Connection, ToSql};

const SHA: &str = "01db76cec961d32c56b7c4fcc42ab1eae1d7f1e96691adcdef99c8d8ac2d5895";

/// CPU time of the calling thread so far (Linux: the first field of its `schedstat`, in ns).
/// Reading it costs a few microseconds, the same on both sides of the comparison.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat (Linux only)");
    let ns = stat.split_whitespace().next().and_then(|f| f.parse().ok()).expect("schedstat's first field");
    Duration::from_nanos(ns)
}

/// `n` records as a gateway writes them: ascending UUIDv7-like ids, mostly champion, a fifth
/// challenger on version 2, a prediction summary each.
fn records(start: usize, n: usize) -> Vec<LineageRecord> {
    (start..start + n)
        .map(|i| {
            let challenger = i % 5 == 0;
            let mut r = LineageRecord::new(
                format!("0193{:04x}-{:04x}-7abc-8def-{:012x}", i / 65536, i % 65536, i * 7919),
                "mlp",
                1 + u32::from(challenger),
                SHA,
                if challenger { LineageRecord::ROUTE_CHALLENGER } else { LineageRecord::ROUTE_CHAMPION },
                format!("weight bucket {} of 10000", i % 10_000),
            );
            (r.queue_us, r.compute_us, r.total_us) = (12, 40, 95);
            r.prediction = Some(serde_json::json!({"label": i % 10}));
            r
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(ModelStore::open(dir.path())).expect("store");
    let mut appender = store.registry().lineage_appender(LineageDurability::Full).expect("appender");
    // A store of its own: the two appenders must not share a WAL.
    let normal_dir = tempfile::tempdir().expect("temp dir");
    let normal_store = runtime.block_on(ModelStore::open(normal_dir.path())).expect("store");
    let mut normal = normal_store.registry().lineage_appender(LineageDurability::Normal).expect("appender");
    let mut baseline = RowPerRecord::open(&dir.path().join("schema5.db"));

    let mut g = c.benchmark_group("lineage_append_cpu");
    for batch in [200, 1000] {
        let id = |name| BenchmarkId::new(name, batch);
        // Each side's request ids keep ascending across criterion's samples, as a gateway's do.
        let (mut next, mut normal_next, mut baseline_next) = (0, 0, 0);
        g.bench_function(id("row_per_batch"), |b| {
            cpu_per_append(b, batch, &mut next, |rs| {
                black_box(appender.append(rs).expect("append"));
            })
        });
        g.bench_function(id("row_per_batch_durability_normal"), |b| {
            cpu_per_append(b, batch, &mut normal_next, |rs| {
                black_box(normal.append(rs).expect("append"));
            })
        });
        g.bench_function(id("baseline_row_per_record"), |b| {
            cpu_per_append(b, batch, &mut baseline_next, |rs| baseline.append(rs))
        });
    }
    g.finish();
}

/// Measures `append` of fresh batches of `batch` records (numbered on from `next`) by the
/// calling thread's CPU time, not counting building the records.
fn cpu_per_append(
    b: &mut criterion::Bencher<'_>,
    batch: usize,
    next: &mut usize,
    mut append: impl FnMut(&[LineageRecord]),
) {
    b.iter_custom(|iters| {
        let mut cpu = Duration::ZERO;
        for _ in 0..iters {
            let rs = records(*next, batch);
            *next += batch;
            let before = thread_cpu();
            append(&rs);
            cpu += thread_cpu() - before;
        }
        cpu
    })
}

/// Schema 2–5's layout and write path, kept here as the baseline: a `lineage` row per record
/// with three secondary indexes, 32 rows to a cached `INSERT`, one transaction per batch.
struct RowPerRecord {
    conn: Connection,
}

impl RowPerRecord {
    const COLUMNS: &str = "request_id, at, at_ms, model, version, sha256, route, reason, sticky_key_hash, \
        input_sha256, queue_us, compute_us, total_us, status, error_class, shadow_of, comparison_json, prediction_json";

    fn open(path: &std::path::Path) -> RowPerRecord {
        let conn = Connection::open(path).expect("baseline db");
        conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
        conn.pragma_update(None, "synchronous", "FULL").expect("full");
        conn.pragma_update(None, "cache_size", -16_384).expect("cache");
        conn.execute_batch(include_str!("../migrations/sqlite/0002_lineage.sql")).expect("schema 2");
        conn.execute_batch("ALTER TABLE lineage ADD COLUMN prediction_json TEXT").expect("schema 4");
        RowPerRecord { conn }
    }

    fn append(&mut self, batch: &[LineageRecord]) {
        let tuple = format!("({})", ["?"; 18].join(", "));
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).expect("begin");
        {
            let mut chunks = batch.chunks_exact(32);
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO lineage ({}) VALUES {}",
                    Self::COLUMNS,
                    vec![tuple.as_str(); 32].join(", ")
                ))
                .expect("prepare");
            for chunk in &mut chunks {
                for (i, r) in chunk.iter().enumerate() {
                    bind(&mut insert, i * 18, r);
                }
                insert.raw_execute().expect("insert");
            }
            let mut single =
                tx.prepare_cached(&format!("INSERT INTO lineage ({}) VALUES {tuple}", Self::COLUMNS)).expect("prepare");
            for r in chunks.remainder() {
                bind(&mut single, 0, r);
                single.raw_execute().expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
}

fn bind(insert: &mut rusqlite::CachedStatement<'_>, base: usize, r: &LineageRecord) {
    let prediction = r.prediction.as_ref().map(|p| p.to_string());
    let comparison = r.comparison.as_ref().map(|c| c.to_string());
    let shadow_of = r.shadow_of.map(|v| v.to_string());
    let values: [&dyn ToSql; 18] = [
        &r.request_id,
        &r.at,
        &r.at_ms,
        &r.model,
        &r.version,
        &r.sha256,
        &r.route,
        &r.reason,
        &r.sticky_key_hash,
        &r.input_sha256,
        &(r.queue_us as i64),
        &(r.compute_us as i64),
        &(r.total_us as i64),
        &r.status,
        &r.error_class,
        &shadow_of,
        &comparison,
        &prediction,
    ];
    for (i, value) in values.into_iter().enumerate() {
        insert.raw_bind_parameter(base + i + 1, value).expect("bind");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = append
}
criterion_main!(benches);
