"""Triton's perf_analyzer (C++ HTTP client: metadata, config, binary tensors, stats) against
mlp on the shared server, concurrency 1..4.

perf_analyzer comes from scripts/setup-perf-analyzer.sh. Path: env PERF_ANALYZER, else
.cache/perf_analyzer/bin/perf_analyzer-run (the wrapper that finds libcudart), else
.cache/perf_analyzer/bin/perf_analyzer. Missing: skipped, unless CI=true, where it fails."""

from __future__ import annotations

import csv
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO

CONCURRENCIES = [1, 2, 3, 4]


def perf_analyzer_path() -> Path | None:
    env = os.environ.get("PERF_ANALYZER")
    candidates = [Path(env)] if env else [
        REPO / ".cache" / "perf_analyzer" / "bin" / "perf_analyzer-run",
        REPO / ".cache" / "perf_analyzer" / "bin" / "perf_analyzer",
    ]  # fmt: skip
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    return None


@pytest.fixture(scope="module")
def perf_analyzer() -> Path:
    path = perf_analyzer_path()
    if path is None:
        where = os.environ.get("PERF_ANALYZER") or ".cache/perf_analyzer/bin/perf_analyzer[-run]"
        message = f"perf_analyzer not found at {where}; install it with scripts/setup-perf-analyzer.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: required)", pytrace=False)
        pytest.skip(message)
    return path


def _stats(server) -> dict:
    r = server.get("/v2/models/mlp/versions/2/stats")
    assert r.status_code == 200, r.text
    return r.json()["model_stats"][0]["inference_stats"]


def test_perf_analyzer_concurrency_sweep(server, perf_analyzer, tmp_path):
    csv_path = tmp_path / "out.csv"
    before = _stats(server)
    args = [
        str(perf_analyzer),
        "-m", "mlp",
        "-u", server.host_port,
        "-i", "http",
        "--concurrency-range", "1:4",
        "--measurement-interval", "1000",
        # On 2 shared cores the server and the client compete: accept any 3 consecutive windows
        # (stability 100%) and give up after 8 windows per step, so the sweep stays under a minute.
        "--stability-percentage", "100",
        "--max-trials", "8",
        "-f", str(csv_path),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=150, cwd=tmp_path)
    elapsed = time.monotonic() - started
    output = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}\nserver log:\n{server.log_tail(2000)}"
    assert proc.returncode == 0, f"perf_analyzer exited {proc.returncode} after {elapsed:.1f} s\n{output}"
    assert csv_path.is_file(), output

    with csv_path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Concurrency", "").strip()]
    by_concurrency = {int(r["Concurrency"]): r for r in rows}
    assert sorted(by_concurrency) == CONCURRENCIES, f"CSV rows: {rows}\n{output}"
    for c, row in by_concurrency.items():
        throughput = float(row["Inferences/Second"])
        assert throughput > 0, f"concurrency {c}: throughput {throughput}"
        assert float(row["p50 latency"]) > 0, row

    # perf_analyzer read the server's stats endpoint; our own view agrees that work was done
    # on the default version (2), none of it failed.
    after = _stats(server)
    done = after["success"]["count"] - before["success"]["count"]
    assert done >= 4 * 10, f"only {done} successful requests during the sweep"
    assert after["fail"]["count"] == before["fail"]["count"]
    assert server.alive()


@pytest.mark.parametrize("streaming", [False, True], ids=["unary", "streaming"])
def test_perf_analyzer_grpc(server, perf_analyzer, tmp_path, streaming):
    """The same sweep over gRPC (-i grpc: ModelMetadata, ModelConfig, raw tensors, ModelStatistics
    through the C++ gRPC client), on the shared server's gRPC listener; with --streaming, every
    request goes over ModelStreamInfer (one bidirectional stream per concurrent client)."""
    csv_path = tmp_path / "grpc.csv"
    before = _stats(server)
    args = [
        str(perf_analyzer),
        "-m", "mlp",
        "-u", server.grpc_host_port,
        "-i", "grpc",
        "--concurrency-range", "1:4",
        "--measurement-interval", "1000",
        "--stability-percentage", "100",
        "--max-trials", "8",
        "-f", str(csv_path),
    ] + (["--streaming"] if streaming else [])  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=150, cwd=tmp_path)
    elapsed = time.monotonic() - started
    output = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}\nserver log:\n{server.log_tail(2000)}"
    assert proc.returncode == 0, f"perf_analyzer -i grpc{' --streaming' * streaming} exited {proc.returncode} after {elapsed:.1f} s\n{output}"
    with csv_path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Concurrency", "").strip()]
    by_concurrency = {int(r["Concurrency"]): r for r in rows}
    assert sorted(by_concurrency) == CONCURRENCIES, f"CSV rows: {rows}\n{output}"
    for c, row in by_concurrency.items():
        assert float(row["Inferences/Second"]) > 0, f"concurrency {c}: {row}"
    after = _stats(server)
    done = after["success"]["count"] - before["success"]["count"]
    assert done >= 4 * 10, f"only {done} successful requests during the sweep"
    assert after["fail"]["count"] == before["fail"]["count"]
    assert server.alive()
