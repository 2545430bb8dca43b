//! Live inputs against the training profile: a profile computed from training data with
//! `models profile`, registered in the manifest; inputs shifted by two standard deviations on one
//! feature raise that feature's drift score past 0.25 and not the others'; a version whose model
//! refuses out-of-profile inputs answers 400 naming the feature and the bound.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Gateway, bin, fixtures, metric_value, post_json};

const FEATURES: usize = 64;

/// Row `i` of the data: values spread over [0, 1) by a fixed sequence.
fn row(i: usize) -> Vec<f32> {
    (0..FEATURES).map(|j| ((i * 31 + j * 17) % 997) as f32 / 997.0).collect()
}

fn write_npy(path: &std::path::Path, rows: usize) {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {FEATURES}), }}");
    let padded = format!("{header:<117}\n");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend(u16::try_from(padded.len()).expect("short header").to_le_bytes());
    bytes.extend(padded.as_bytes());
    for i in 0..rows {
        for v in row(i) {
            bytes.extend(v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).expect("write npy");
}

#[test]
fn a_shifted_feature_drifts_and_a_strict_model_refuses_out_of_profile_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("train.npy");
    write_npy(&data, 1000);
    let out =
        std::process::Command::new(bin()).args(["models", "profile", "--data"]).arg(&data).output().expect("profile");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest = dir.path().join("profile.toml");
    std::fs::write(&manifest, &out.stdout).expect("manifest");
    let store = dir.path().join("store");
    for model in ["mlp", "strict"] {
        let out = std::process::Command::new(bin())
            .args(["models", "register", "--model", model, "--store"])
            .arg(&store)
            .arg("--file")
            .arg(fixtures().join("models/mlp_v1.onnx"))
            .arg("--manifest")
            .arg(&manifest)
            .output()
            .expect("register");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let hook = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", hook.local_addr().expect("addr"));
    let got = crate::alerts::receiver(hook, Duration::from_secs(60));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[store]\npath = \"{{store}}\"\n\
         [[model]]\nname = \"mlp\"\nversions = [1]\n[model.validation]\nwindow = \"60s\"\nmax_psi = 0.25\n\
         [model.promotion]\nmax_psi = 0.25\n\
         [[model]]\nname = \"strict\"\nversions = [1]\n[model.validation]\nout_of_range = \"refuse\"\n\
         [[alert]]\nkind = \"webhook\"\nurl = \"{url}\"\nevents = [\"drift_breach\"]\n"
    );
    let gw = Gateway::start(dir.path(), &store, &config);
    let std = 0.289; // of a uniform [0, 1)
    for i in 1000..1300 {
        let mut x = row(i);
        x[7] += (2.0 * std) as f32;
        let body = json!({"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": x}]});
        assert_eq!(post_json(gw.public, "/v2/models/mlp/infer", &body).status, 200, "counted, not refused");
    }
    let psi = |feature: usize| {
        metric_value(&gw, "switchyard_drift_psi", &[("model", "mlp"), ("feature", &feature.to_string())])
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while psi(7).is_none_or(|p| p <= 0.25) {
        assert!(Instant::now() < deadline, "feature 7's drift never passed 0.25: {:?}", psi(7));
        std::thread::sleep(Duration::from_millis(200));
    }
    for f in (0..FEATURES).filter(|f| *f != 7) {
        let p = psi(f).expect("every feature exported");
        assert!(p < 0.25, "feature {f} drifts too ({p}) though only 7 was shifted");
    }
    let oor = metric_value(&gw, "switchyard_out_of_range_ratio", &[("model", "mlp"), ("feature", "7")]).expect("ratio");
    assert!(oor > 0.3, "{oor}");

    // The breach is alerted (once: the queue de-duplicates), naming the feature and its PSI.
    let alerts = crate::alerts::wait_for(&got, "the drift alert", |g| !g.is_empty());
    let (_, alert) = &alerts[0];
    assert_eq!((alert["kind"].as_str(), alert["model"].as_str()), (Some("drift_breach"), Some("mlp")), "{alert}");
    assert_eq!(alert["detail"]["feature"], 7, "{alert}");
    assert!(alert["detail"]["psi"].as_f64().expect("psi") > 0.25, "{alert}");
    // And the promotion gate on drift fails, naming it.
    let gates = crate::support::admin(&gw).gates("mlp", 1).expect("gates");
    let gate =
        gates["gates"].as_array().expect("gates").iter().find(|g| g["gate"] == "input drift").expect("gate").clone();
    assert_eq!(gate["passed"], false, "{gate}");
    assert!(gate["measured"].as_str().expect("measured").starts_with("feature 7: PSI"), "{gate}");

    let mut bad = row(5);
    bad[3] = 5.0;
    let body = json!({"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": bad}]});
    let r = post_json(gw.public, "/v2/models/strict/infer", &body);
    assert_eq!(r.status, 400);
    let message = r.json()["error"].as_str().expect("message").to_owned();
    assert!(message.contains("feature 3") && message.contains("outside the training range"), "{message}");
    let good = json!({"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": row(5)}]});
    assert_eq!(post_json(gw.public, "/v2/models/strict/infer", &good).status, 200);
    assert!(gw.terminate().success());
}
