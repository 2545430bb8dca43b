//! Switchyard's gateway: serves versioned ONNX models over KServe v2.
//!
//! The layers below it are crates of their own: `protocol` (tensors, request ids, the v2
//! codec), `settings` (the config file), `policy` (routing, guard judgement, promotion gates),
//! `model-store` (artifacts, registry, lineage store). Here, bottom to top (`LAYERS`): `engine`
//! (ONNX Runtime sessions on worker threads or inline), `telemetry` (metric handles, the
//! recorder), `lineage` (per-request records, written off the request path), `serving` (the
//! loaded versions, one snapshot), `control` (its owner and only writer: guard verdicts from its
//! guard task, operator actions, reloads), `pipeline` (one inference request's run, the same for
//! every front end: decide, run, record once), `app` (what the front ends share), `http` (REST
//! listeners and handlers) and `grpc` (the gRPC service on its own listener), `client` (the
//! typed admin API client), `cli` (commands).
//! `docs/architecture.md` draws the layers.

pub mod alerts;
pub mod app;
pub mod capture;
pub mod cli;
pub mod client;
pub mod control;
pub mod engine;
pub mod grpc;
pub mod http;
pub mod jobs;
pub mod limiter;
pub mod lineage;
pub mod pipeline;
pub mod serving;
pub mod telemetry;
pub mod upstream;

/// The gateway's layers, bottom first: a module may use the crates below the gateway
/// (`protocol`, `settings`, `policy`, `model-store`) and the modules of earlier layers, never
/// one of its own layer or above. `cargo test -p gateway layers` checks it
/// (`docs/architecture.md` draws the picture).
#[rustfmt::skip]
pub const LAYERS: [&[&str]; 9] = [
    &["upstream"],
    &["engine", "telemetry", "lineage", "limiter", "alerts", "capture"],
    &["serving", "jobs"],
    &["control"],
    &["pipeline"],
    &["app"],
    &["http", "grpc"],
    &["client"],
    &["cli"],
];

#[cfg(test)]
mod layers {
    use std::path::Path;

    /// Every `crate::MODULE` a module's files name, outside their own tests.
    fn uses(module: &str) -> Vec<String> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d).expect("read_dir") {
                    let path = entry.expect("entry").path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "rs") {
                        files.push(path);
                    }
                }
            }
        } else {
            files.push(src.join(format!("{module}.rs")));
        }
        let mut found = Vec::new();
        for file in files {
            // Tests may reach up for fixtures (a pipeline test builds a control plane).
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                let name: String =
                    code[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if name != module && !found.contains(&name) {
                    found.push(name);
                }
            }
        }
        found
    }

    #[test]
    fn modules_only_use_the_layers_below_theirs() {
        let rank = |m: &str| super::LAYERS.iter().position(|layer| layer.contains(&m));
        let mut wrong = Vec::new();
        for (i, layer) in super::LAYERS.iter().enumerate() {
            for module in *layer {
                for used in uses(module) {
                    match rank(&used) {
                        Some(r) if r < i => {}
                        Some(_) => wrong.push(format!("{module} uses {used}, of its own layer or above")),
                        None => wrong.push(format!("{module} uses {used}, which is in no layer (add it to LAYERS)")),
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_module_is_in_a_layer() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for entry in std::fs::read_dir(src).expect("read_dir") {
            let path = entry.expect("entry").path();
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            if matches!(name, "lib" | "main") {
                continue;
            }
            assert!(super::LAYERS.iter().any(|l| l.contains(&name)), "module {name} is in no layer");
        }
    }
}
