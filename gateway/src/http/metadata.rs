//! JSON bodies of the v2 metadata endpoints: server, model metadata, Triton-style model config
//! (what `perf_analyzer` reads) and Triton's statistics extension.

use model_store::{Signature, TensorSpec};
use serde_json::{Value, json};

use crate::engine::{Device, StatsSnapshot};
use crate::serving::{LoadedVersion, ServedModel};

pub use crate::app::EXTENSIONS;

/// `GET /v2`.
pub fn server_metadata() -> Value {
    json!({ "name": "switchyard", "version": env!("CARGO_PKG_VERSION"), "extensions": EXTENSIONS })
}

fn tensors(specs: &[TensorSpec]) -> Vec<Value> {
    specs.iter().map(|s| json!({ "name": s.name, "datatype": s.datatype, "shape": s.shape })).collect()
}

/// `GET /v2/models/{m}[/versions/{v}]`: `versions` lists every loaded version; the signature
/// is that of `shown` (the default version, or the one asked for).
pub fn model_metadata(model: &ServedModel, shown: &LoadedVersion) -> Value {
    let versions: Vec<String> = model.ready_versions().map(|l| l.instance.version.to_string()).collect();
    let sig: &Signature = &shown.instance.signature;
    json!({
        "name": model.name,
        "versions": versions,
        "platform": "onnxruntime_onnx",
        "inputs": tensors(&sig.inputs),
        "outputs": tensors(&sig.outputs),
    })
}

fn triton_type(datatype: &str) -> String {
    match datatype {
        "BYTES" => "TYPE_STRING".to_owned(),
        other => format!("TYPE_{other}"),
    }
}

/// `GET …/config`: Triton's model configuration. When the version batches along a dynamic first
/// dimension, `max_batch_size` > 0 and `dims` leave that dimension out, as Triton does.
pub fn model_config(model: &ServedModel, shown: &LoadedVersion) -> Value {
    let inst = &shown.instance;
    let max_batch_size = crate::app::max_batch_size(model, shown);
    let dims = |spec: &TensorSpec| -> Vec<i64> {
        if max_batch_size > 0 { spec.shape[1..].to_vec() } else { spec.shape.clone() }
    };
    let io = |specs: &[TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|s| json!({ "name": s.name, "data_type": triton_type(&s.datatype), "dims": dims(s) }))
            .collect()
    };
    let versions: Vec<u32> = model.ready_versions().map(|l| l.instance.version).collect();
    let kind = match inst.settings.device {
        Device::Cpu => json!({ "count": inst.instances, "kind": "KIND_CPU" }),
        Device::Cuda(n) => json!({ "count": inst.instances, "kind": "KIND_GPU", "gpus": [n] }),
    };
    let mut config = json!({
        "name": model.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "version_policy": { "specific": { "versions": versions } },
        "max_batch_size": max_batch_size,
        "input": io(&inst.signature.inputs),
        "output": io(&inst.signature.outputs),
        "instance_group": [kind],
    });
    if inst.batchable && inst.settings.max_batch > 1 {
        config["dynamic_batching"] = json!({
            "max_queue_delay_microseconds": inst.settings.batch_delay.as_micros() as u64,
        });
    }
    config
}

fn duration(pair: (u64, u64)) -> Value {
    json!({ "count": pair.0, "ns": pair.1 })
}

/// One entry of `model_stats` in Triton's statistics extension.
pub fn version_stats(model: &str, version: u32, s: &StatsSnapshot) -> Value {
    json!({
        "name": model,
        "version": version.to_string(),
        "last_inference": s.last_inference_ms,
        "inference_count": s.inference_count,
        "execution_count": s.execution_count,
        "inference_stats": {
            "success": duration(s.success),
            "fail": duration(s.fail),
            "queue": duration(s.queue),
            "compute_input": duration((s.compute.0, 0)),
            "compute_infer": duration(s.compute),
            "compute_output": duration((s.compute.0, 0)),
            "cache_hit": duration((0, 0)),
            "cache_miss": duration((0, 0)),
        },
        "batch_stats": [],
    })
}
