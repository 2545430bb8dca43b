//! Micro-benchmarks of the request path's pure parts, each beside a baseline that does the
//! least comparable work, so a regression shows as a ratio rather than a raw time:
//! - routing decision vs. a bare modulo draw;
//! - v2 JSON decode vs. `serde_json` parsing the same body into a `Value`;
//! - v2 encode vs. `serde_json` writing an equivalent `Value`;
//! - lineage: the request path's part (a `Run`) and the writer's (rendering it into a
//!   `LineageRecord`) vs. cloning the strings a record holds.
//!
//! Run: `cargo bench -p gateway --bench micro` (results: `benches/results/micro.md`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use gateway::lineage::{How, Prediction, Run};
use policy::router::{Choice, Decision, Reason, Route, RoutingTable};
use protocol::request_id::RequestId;
use protocol::tensor::{Tensor, TensorData};
use protocol::v2::decode::decode_request;
use protocol::v2::encode::{EncodedOutput, ResponseHead, ResponseParameters, encode_response};
use protocol::v2::json_data::{self, Leaf};
use serde_json::{Value, json};

fn routing(c: &mut Criterion) {
    let table = RoutingTable { challengers: vec![(2, 2000), (3, 500)], ..RoutingTable::single(1) };
    let mut g = c.benchmark_group("routing");
    g.bench_function("pick_weighted", |b| b.iter(|| black_box(table.pick(None))));
    g.bench_function("pick_sticky", |b| b.iter(|| black_box(table.pick(Some(black_box(b"user-12345"))))));
    let mut n = 0u64;
    g.bench_function("baseline_modulo", |b| {
        b.iter(|| {
            n = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
            black_box(n % 10_000)
        })
    });
    g.finish();
}

/// The tensor data every decode bench reads: `n` floats with a mix of short and long decimals.
fn floats(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 / 7.0).collect()
}

/// A v2 JSON request of one FP32 input of `n` elements, as serde_json prints `f32`s. A `Value`
/// prints its keys sorted, so `data` comes before `datatype` (as from Go's maps too).
fn body(n: usize) -> Vec<u8> {
    let data = floats(n);
    json!({"id": "r1", "inputs": [{"name": "input", "shape": [1, n], "datatype": "FP32", "data": data}]})
        .to_string()
        .into_bytes()
}

/// The same request with its keys in the order tritonclient writes them (`datatype` before
/// `data`).
fn body_in_client_order(n: usize) -> Vec<u8> {
    let data = floats(n);
    let data =
        serde_json::to_string(&data.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()).expect("floats serialise");
    format!(r#"{{"id":"r1","inputs":[{{"name":"input","shape":[1,{n}],"datatype":"FP32","data":{data}}}]}}"#)
        .into_bytes()
}

fn decode(c: &mut Criterion) {
    // The tiny model's input, and the wide (batchable) model's of the side-by-side bench.
    for n in [64, 512] {
        let body = body(n);
        let mut g = c.benchmark_group(format!("v2_decode_json_{n}_floats"));
        g.bench_function("decode_request", |b| b.iter(|| black_box(decode_request(black_box(&body), None))));
        let in_order = body_in_client_order(n);
        g.bench_function("decode_request_client_order", |b| {
            b.iter(|| black_box(decode_request(black_box(&in_order), None)))
        });
        g.bench_function("baseline_serde_value", |b| {
            b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&body))))
        });
        g.finish();
    }
    // The tensor data alone: the byte loop the decoder reads it with, against the serde_json walk
    // it used before (and still uses for what the loop leaves to it).
    let data = floats(512);
    let text = serde_json::to_string(&data).expect("floats serialise");
    let mut g = c.benchmark_group("v2_json_data_512_floats");
    let mut out: Vec<f32> = Vec::with_capacity(512);
    let take = |out: &mut Vec<f32>, leaf| match leaf {
        Leaf::Float(x) => {
            out.push(x as f32);
            true
        }
        _ => false,
    };
    g.bench_function("scan", |b| {
        b.iter(|| {
            out.clear();
            black_box(json_data::scan(black_box(&text), &mut |leaf| take(&mut out, leaf)));
        })
    });
    g.bench_function("baseline_serde_walk", |b| {
        b.iter(|| {
            out.clear();
            black_box(json_data::walk(black_box(&text), &mut |leaf| take(&mut out, leaf)));
        })
    });
    // What the decoder pays before either: serde_json finding the data's extent (`RawValue`).
    g.bench_function("extent_raw_value", |b| {
        b.iter(|| black_box(serde_json::from_str::<&serde_json::value::RawValue>(black_box(&text)).is_ok()))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let tensor = Tensor {
        name: "output".into(),
        shape: vec![1, 10],
        data: TensorData::Fp32((0..10).map(|i| i as f32 * 0.1).collect()),
    };
    let sha = "01db76cec961d32c56b7c4fcc42ab1eae1d7f1e96691adcdef99c8d8ac2d5895";
    let parameters = Some(ResponseParameters { model_sha256: sha, model_version: 1, route: "champion" });
    let head = ResponseHead { model_name: "mlp", model_version: 1, id: Some("r1"), parameters };
    let outputs = [EncodedOutput { tensor: &tensor, binary: false }];
    let equivalent = json!({"model_name": "mlp", "model_version": "1", "id": "r1", "parameters": {"model_sha256": sha, "model_version": "1", "route": "champion"},
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [1, 10], "data": (0..10).map(|i| i as f32 * 0.1).collect::<Vec<_>>()}]});
    let mut g = c.benchmark_group("v2_encode_json_10_floats");
    g.bench_function("encode_response", |b| {
        b.iter(|| black_box(encode_response(black_box(&head), black_box(&outputs))))
    });
    g.bench_function("baseline_serde_value", |b| b.iter(|| black_box(serde_json::to_vec(black_box(&equivalent)))));
    g.finish();
}

/// The response's `parameters` as built per request: typed (`ResponseParameters`) against the
/// `serde_json::Map` of `Value`s it replaced (three String keys, the version formatted, the hash
/// copied), each serialised.
fn response_parameters(c: &mut Criterion) {
    let sha = "01db76cec961d32c56b7c4fcc42ab1eae1d7f1e96691adcdef99c8d8ac2d5895";
    let (version, route) = (3_u32, "champion");
    let mut g = c.benchmark_group("v2_response_parameters");
    g.bench_function("typed", |b| {
        b.iter(|| {
            let p = ResponseParameters { model_sha256: black_box(sha), model_version: black_box(version), route };
            black_box(serde_json::to_vec(&p))
        })
    });
    g.bench_function("baseline_map", |b| {
        b.iter(|| {
            let mut p = serde_json::Map::new();
            p.insert("model_version".into(), black_box(version).to_string().into());
            p.insert("model_sha256".into(), black_box(sha).into());
            p.insert("route".into(), route.into());
            black_box(serde_json::to_vec(&p))
        })
    });
    g.finish();
}

fn lineage(c: &mut Criterion) {
    let decision = Decision { version: 2, route: Route::Challenger, reason: Reason::WeightBucket(8123) };
    let sha = "01db76cec961d32c56b7c4fcc42ab1eae1d7f1e96691adcdef99c8d8ac2d5895";
    let (model, sha256): (Arc<str>, Arc<str>) = (Arc::from("mlp"), Arc::from(sha));
    let id = "0190f3c2-6a1b-7c3d-8e4f-123456789abc";
    let request_id = RequestId::from_client(id.as_bytes()).expect("a valid id");
    let arrived = SystemTime::now();
    let run = || Run {
        request_id,
        arrived,
        model: Arc::clone(&model),
        version: 2,
        sha256: Arc::clone(&sha256),
        how: How::Answered(Choice { decision, fell_back: None, note: None }),
        input_sha256: None,
        queue: Duration::from_micros(12),
        compute: Duration::from_micros(30),
        total: Duration::from_micros(95),
        status: 200,
        error_class: None,
        prediction: Some(Prediction::Label(3)),
        comparison: None,
        upstream: None,
        slice: None,
    };
    let mut g = c.benchmark_group("lineage_record");
    g.bench_function("request_path_run", |b| b.iter(|| black_box(run())));
    g.bench_function("writer_into_record", |b| {
        b.iter_batched(run, |r| black_box(r.into_record()), criterion::BatchSize::SmallInput)
    });
    g.bench_function("baseline_clone_strings", |b| {
        b.iter(|| {
            black_box((
                id.to_owned(),
                "mlp".to_owned(),
                sha.to_owned(),
                "challenger".to_owned(),
                "weight bucket".to_owned(),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, routing, decode, encode, response_parameters, lineage);
criterion_main!(benches);
