"""Prediction jobs (`switchyard predict`) over a 100,000-row file: outputs equal to onnxruntime's
on the same rows, a record that `lineage show JOB_ID` resolves to the training commit, and a job
killed midway and resumed that ends with the same output sha256 as an uninterrupted one. Bad
input is refused before any output is written."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time

import numpy as np
import onnxruntime as ort

from conftest import MANIFESTS, MODELS, _env, run_cli, switchyard_bin

ROWS = 100_000


def predict(store, data, out, *extra, check=True):
    proc = subprocess.run(
        [str(switchyard_bin()), "predict", "--store", str(store), "--model", "mlp:1", "--input", str(data),
         "--output", str(out), "--json", *extra],
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])
    return proc


def test_a_prediction_job_matches_onnxruntime_chains_to_training_and_resumes(fixture_store, tmp_path):
    store, _ = fixture_store
    rng = np.random.default_rng(7)
    x = rng.random((ROWS, 64), dtype=np.float32)
    data = tmp_path / "customers.npy"
    np.save(data, x)

    out = tmp_path / "scores.npy"
    job = predict(store, data, out, "--batch", "1000")
    assert (job["rows"], job["failed_rows"]) == (ROWS, 0)
    got = np.load(out)
    session = ort.InferenceSession(str(MODELS / "mlp_v1.onnx"), providers=["CPUExecutionProvider"])
    want = np.concatenate([session.run(None, {"input": x[i : i + 10_000]})[0] for i in range(0, ROWS, 10_000)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert job["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()

    chain = json.loads(run_cli("lineage", "show", "--json", "--store", str(store), job["job"]).stdout)
    manifest = (MANIFESTS / "mlp_v1.toml").read_text()
    assert chain["provenance"]["training"]["code_commit"] in manifest
    assert chain["job"]["input_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert chain["events"][0]["kind"] == "registered"

    # Killed midway, resumed: the same bytes as the uninterrupted run.
    interrupted = tmp_path / "scores-2.npy"
    proc = subprocess.Popen(
        [str(switchyard_bin()), "predict", "--store", str(store), "--model", "mlp:1", "--input", str(data),
         "--output", str(interrupted), "--batch", "1000", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    job_id = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = json.loads(run_cli("jobs", "list", "--json", "--store", str(store), "--model", "mlp").stdout)
        running = [j for j in listed if j["status"] == "running" and j["rows_done"] >= 10_000]
        if running:
            job_id = running[0]["id"]
            break
        time.sleep(0.05)
    assert job_id, "the job never got 10,000 rows in"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    shown = json.loads(run_cli("jobs", "show", "--json", "--store", str(store), job_id).stdout)
    assert shown["status"] == "running" and 0 < shown["rows_done"] < ROWS, shown
    resumed = predict(store, data, interrupted, "--batch", "1000", "--resume", job_id)
    assert resumed["job"] == job_id
    assert resumed["output_sha256"] == job["output_sha256"], "resumed output differs from an uninterrupted one"
    assert json.loads(run_cli("jobs", "show", "--json", "--store", str(store), job_id).stdout)["status"] == "succeeded"


def test_bad_input_is_refused_before_any_output(fixture_store, tmp_path):
    store, _ = fixture_store
    data = tmp_path / "narrow.npy"
    np.save(data, np.zeros((10, 7), dtype=np.float32))
    out = tmp_path / "never.npy"
    proc = predict(store, data, out, check=False)
    assert proc.returncode == 1
    assert "holds 7 features per row" in proc.stderr, proc.stderr
    assert not out.exists()
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    proc = predict(store, tmp_path / "junk.npy", out, check=False)
    assert proc.returncode == 1 and "is not a NumPy .npy file" in proc.stderr, proc.stderr
    assert not out.exists()


def test_a_serving_gateway_runs_a_job_at_low_priority_and_answers_meanwhile(server, tmp_path):
    """`POST /admin/jobs`: the gateway starts the job (a `switchyard predict` child at nice 19),
    answers 202 with its id once it is checked and recorded, keeps serving while it runs, and the
    job's output is the CLI's, byte for byte. Bad jobs are refused with the reason."""
    import requests

    rows = 20_000
    x = np.random.default_rng(11).random((rows, 64), dtype=np.float32)
    data = tmp_path / "batch.npy"
    np.save(data, x)
    out = tmp_path / "via-gateway.npy"
    r = requests.post(f"{server.admin}/admin/jobs", json={"model": "mlp:1", "input": str(data), "output": str(out), "batch": 500},
                      timeout=150)
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]
    answered = 0
    deadline = time.monotonic() + 180
    while True:
        shown = requests.get(f"{server.admin}/admin/jobs/{job_id}", timeout=10).json()
        if shown["status"] != "running":
            break
        assert time.monotonic() < deadline, shown
        body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": x[answered % rows].tolist()}]}
        assert requests.post(f"{server.public}/v2/models/mlp/infer", json=body, timeout=10).status_code == 200
        answered += 1
    assert shown["status"] == "succeeded", shown
    assert shown["rows_done"] == rows and shown["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    session = ort.InferenceSession(str(MODELS / "mlp_v1.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(np.load(out), session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)
    cli = predict(server.store, data, tmp_path / "via-cli.npy", "--batch", "500")
    assert cli["output_sha256"] == shown["output_sha256"], "the gateway's job and the CLI's write the same bytes"
    listed = requests.get(f"{server.admin}/admin/jobs?model=mlp", timeout=10).json()
    assert job_id in [j["id"] for j in listed]

    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.zeros((10, 7), dtype=np.float32))
    for body, status, message in [
        ({"model": "mlp:1", "input": str(narrow), "output": str(tmp_path / "x.npy")}, 400, "holds 7 features per row"),
        ({"model": "mlp:1", "input": "batch.npy", "output": str(tmp_path / "x.npy")}, 400, "absolute path"),
        ({"model": "mlp:1", "input": str(data), "output": str(tmp_path / "x.npy"), "speed": 2}, 400, "unknown field"),
        ({"model": "nope", "input": str(data), "output": str(tmp_path / "x.npy")}, 400, "nope"),
    ]:
        r = requests.post(f"{server.admin}/admin/jobs", json=body, timeout=150)
        assert r.status_code == status and message in r.json()["error"], (body, r.status_code, r.text)
    assert not (tmp_path / "x.npy").exists()
    assert requests.get(f"{server.admin}/admin/jobs/no-such-job", timeout=10).status_code == 404


def test_parquet_in_parquet_out_matches_onnxruntime_and_resumes_to_the_same_bytes(fixture_store, tmp_path):
    """A Parquet file of 64 float columns (written by pyarrow, Snappy) in, Parquet out (one FLOAT
    column per output element, read back by pyarrow), equal to onnxruntime on the same rows; a
    job killed midway and resumed ends with the same bytes as an uninterrupted one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store, _ = fixture_store
    rows = 50_000
    x = np.random.default_rng(5).random((rows, 64), dtype=np.float32)
    data = tmp_path / "customers.parquet"
    pq.write_table(pa.table({f"f{i}": x[:, i] for i in range(64)}), data, compression="snappy")
    out = tmp_path / "scores.parquet"
    job = predict(store, data, out, "--batch", "1000")
    assert (job["rows"], job["failed_rows"]) == (rows, 0)
    table = pq.read_table(out)
    assert table.column_names == [f"output_{i}" for i in range(10)]
    got = np.stack([table.column(i).to_numpy() for i in range(10)], axis=1)
    session = ort.InferenceSession(str(MODELS / "mlp_v1.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)
    assert job["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert not (tmp_path / "scores.parquet.partial.npy").exists(), "the staging file is gone"

    interrupted = tmp_path / "scores-2.parquet"
    proc = subprocess.Popen(
        [str(switchyard_bin()), "predict", "--store", str(store), "--model", "mlp:1", "--input", str(data),
         "--output", str(interrupted), "--batch", "500", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    job_id = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job_id is None:
        listed = json.loads(run_cli("jobs", "list", "--json", "--store", str(store), "--model", "mlp").stdout)
        running = [j for j in listed if j["status"] == "running" and j["rows_done"] >= 5_000 and j["output_uri"] == str(interrupted)]
        job_id = running[0]["id"] if running else None
        time.sleep(0.02)
    assert job_id, "the job never got 5,000 rows in"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not interrupted.exists(), "no Parquet file before the job ends"
    resumed = predict(store, data, interrupted, "--batch", "500", "--resume", job_id)
    assert resumed["output_sha256"] == job["output_sha256"], "resumed Parquet output differs from an uninterrupted one"


def test_npz_in_npz_out(fixture_store, tmp_path):
    """`np.savez_compressed` input holding several arrays (the one named after the model's input
    is read), `.npz` output holding the first output as `output`, as `np.load` reads it."""
    store, _ = fixture_store
    x = np.random.default_rng(9).random((3_000, 64), dtype=np.float32)
    data = tmp_path / "batch.npz"
    np.savez_compressed(data, input=x, ids=np.arange(3_000))
    out = tmp_path / "scores.npz"
    job = predict(store, data, out, "--batch", "256")
    assert job["rows"] == 3_000
    session = ort.InferenceSession(str(MODELS / "mlp_v1.onnx"), providers=["CPUExecutionProvider"])
    with np.load(out) as archive:
        assert list(archive.keys()) == ["output"]
        np.testing.assert_allclose(archive["output"], session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)
    again = predict(store, data, tmp_path / "again.npz")
    assert again["output_sha256"] == job["output_sha256"], "the same array, the same bytes"
    ambiguous = tmp_path / "two.npz"
    np.savez(ambiguous, a=x, b=x)
    proc = predict(store, ambiguous, tmp_path / "never.npz", check=False)
    assert proc.returncode == 1 and "one must be named after the model's input ('input')" in proc.stderr, proc.stderr
