"""The gateway's /metrics, read by the real Prometheus tools rather than by regular expressions:

- `promtool check metrics` parses and lints the exposition (format, HELP/TYPE, naming
  conventions such as `_total` on counters and base units) after real traffic, so that every
  histogram has samples;
- a real Prometheus scrapes a canary gateway (champion v1, challenger v2 at 50 %) every second
  while requests stream in, and PromQL over what it stored gives a p99 latency per version and
  request counts that add up to what the test sent.

Prometheus and promtool come from scripts/setup-prometheus.sh (Debian's `prometheus` package).
If that script fails, these tests fail: they are never skipped.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import math
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from conftest import (
    REPO,
    Server,
    _LIVE,
    config_toml,
    mlp_json_body,
    start_server,
    stop_server,
    toml_value,
)

SETUP_SCRIPT = REPO / "scripts" / "setup-prometheus.sh"
SETUP_TIMEOUT_S = 600.0  # a first run installs a Debian package
SCRAPE_INTERVAL_S = 1.0
PROMETHEUS_START_TIMEOUT_S = 20.0
PROMETHEUS_STOP_TIMEOUT_S = 10.0
QUERY_TIMEOUT_S = 10.0

# The canary stream: this many requests, spread evenly over this many seconds, so that several
# 1 s scrapes land while it runs.
CANARY_REQUESTS = 300
CANARY_SECONDS = 5.0


# --------------------------------------------------------------------------------------------
# The tools


@dataclasses.dataclass(frozen=True)
class PromTools:
    prometheus: Path
    promtool: Path


@pytest.fixture(scope="module")
def prom_tools() -> PromTools:
    """Runs scripts/setup-prometheus.sh once for this module and parses the paths it prints.
    A failure is a test failure (with the script's stderr), not a skip."""
    try:
        proc = subprocess.run(
            [str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=SETUP_TIMEOUT_S, cwd=REPO
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{SETUP_SCRIPT} did not finish within {SETUP_TIMEOUT_S:.0f} s:\n{e.stderr}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"{SETUP_SCRIPT} exited {proc.returncode}:\n{proc.stderr[-4000:]}", pytrace=False)
    lines = proc.stdout.strip().splitlines()
    match = re.fullmatch(r"prometheus=(\S+) promtool=(\S+)", lines[-1] if lines else "")
    if not match:
        pytest.fail(f"{SETUP_SCRIPT} printed no paths line:\n{proc.stdout}\n{proc.stderr[-4000:]}", pytrace=False)
    return PromTools(prometheus=Path(match[1]), promtool=Path(match[2]))


def promtool_check_metrics(tools: PromTools, body: str) -> None:
    """`promtool check metrics < body` must exit 0; its findings are the failure message."""
    proc = subprocess.run(
        [str(tools.promtool), "check", "metrics"], input=body, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, (
        f"promtool check metrics exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    )


# --------------------------------------------------------------------------------------------
# A gateway with [model.routing]


def routed_config_toml(store: Path, model: dict, routing: dict) -> str:
    """config_toml for one model, plus its `[model.routing]` table. Tables such as `challengers`
    are written inline: `{ 2 = 50 }` (version = percent)."""

    def value(v) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
        return toml_value(v)

    lines = ["[model.routing]"] + [f"{k} = {value(v)}" for k, v in routing.items()]
    # The routing table belongs to the last [[model]], which is the only one here.
    return config_toml(store, [model]) + "\n".join(lines) + "\n"


@pytest.fixture
def start_routed_server(tmp_path) -> Iterator[Callable[..., Server]]:
    """Like conftest's start_extra_server, for a config with a routing table (config_toml has no
    way to write one): `start(store, model, routing, name=...)`. Each server is stopped with
    SIGTERM at teardown and must exit 0."""
    started: list[Server] = []

    def start(store: Path, model: dict, routing: dict, name: str = "routed") -> Server:
        config = tmp_path / f"{name}-{len(started)}.toml"
        config.write_text(routed_config_toml(store, model, routing))
        srv = start_server(config, store, tmp_path / f"{name}-{len(started)}.log")
        started.append(srv)
        return srv

    yield start
    failures = []
    for srv in started:
        try:
            rc = stop_server(srv)
        except BaseException as e:  # keep stopping the others
            failures.append(f"{srv.public}: {e}")
            continue
        if rc != 0:
            failures.append(f"{srv.public}: exit code {rc} after SIGTERM\n{srv.log_tail()}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------------------------
# A Prometheus subprocess


@dataclasses.dataclass
class Prometheus:
    """A running Prometheus, on 127.0.0.1 only, with its TSDB in the test's tmp_path."""

    url: str
    proc: subprocess.Popen
    log: Path

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def query(self, expr: str) -> list[dict]:
        """An instant query; returns `data.result` (for a vector: [{"metric", "value": [t, "v"]}])."""
        r = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=QUERY_TIMEOUT_S)
        assert r.status_code == 200, f"query {expr!r}: HTTP {r.status_code}: {r.text}"
        body = r.json()
        assert body["status"] == "success", f"query {expr!r}: {body}"
        return body["data"]["result"]

    def poll(self, expr: str, done: Callable[[list[dict]], bool], timeout: float, what: str) -> list[dict]:
        """Queries `expr` until `done(result)`; fails with the last result after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"prometheus exited {self.proc.returncode}:\n{self.log_tail()}"
            result = self.query(expr)
            if done(result):
                return result
            if time.monotonic() >= deadline:
                pytest.fail(f"{what}: not within {timeout:.0f} s; last `{expr}` gave {result}")
            time.sleep(0.2)


def free_port() -> int:
    """A port the OS has just handed out on 127.0.0.1 (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_prometheus(proc: subprocess.Popen) -> None:
    """SIGTERM, a bounded wait, then SIGKILL."""
    try:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=PROMETHEUS_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    finally:
        _LIVE.discard(proc)


@contextlib.contextmanager
def run_prometheus(tools: PromTools, workdir: Path, target: str) -> Iterator[Prometheus]:
    """Starts Prometheus scraping `target` (host:port, path /metrics) every second, waits until
    it is ready, and stops it on exit."""
    config = workdir / "prometheus.yml"
    interval = f"{SCRAPE_INTERVAL_S:g}s"
    # JSON is YAML.
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
                "scrape_configs": [
                    {"job_name": "switchyard", "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
                ],
            },
            indent=2,
        )
    )
    check = subprocess.run(
        [str(tools.promtool), "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, f"promtool check config:\n{check.stdout}{check.stderr}"

    log = workdir / "prometheus.log"
    for _ in range(3):
        port = free_port()
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [
                    str(tools.prometheus),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                start_new_session=True,  # ^C reaches pytest only; teardown (or atexit) stops it
            )
        _LIVE.add(proc)
        prom = Prometheus(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
        try:
            if _wait_ready(prom):
                break
        except BaseException:
            stop_prometheus(proc)
            raise
        stop_prometheus(proc)
        if "address already in use" not in prom.log_tail():
            pytest.fail(f"prometheus exited {proc.returncode} at start:\n{prom.log_tail()}")
    else:
        pytest.fail(f"prometheus found no free port in 3 tries:\n{prom.log_tail()}")
    try:
        yield prom
    finally:
        stop_prometheus(proc)


def _wait_ready(prom: Prometheus) -> bool:
    """True once /-/ready answers 200; False if the process exits first; fails on timeout."""
    deadline = time.monotonic() + PROMETHEUS_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if prom.proc.poll() is not None:
            return False
        try:
            if requests.get(f"{prom.url}/-/ready", timeout=2).status_code == 200:
                return True
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"prometheus was not ready within {PROMETHEUS_START_TIMEOUT_S:.0f} s:\n{prom.log_tail()}")


def sample_value(sample: dict) -> float:
    """The float of an instant-vector sample (Prometheus sends it as a string, NaN included)."""
    return float(sample["value"][1])


# --------------------------------------------------------------------------------------------
# promtool check metrics


def test_promtool_accepts_metrics_after_traffic(healthy, prom_tools):
    """The shared server's /metrics after pinned and unpinned requests on every mlp version,
    batches, and a 400: promtool parses and lints it without a finding."""
    for version in (None, 1, 2, 3):
        path = "/v2/models/mlp/infer" if version is None else f"/v2/models/mlp/versions/{version}/infer"
        for seed, batch in enumerate((1, 1, 3, 8)):
            r = healthy.post(path, json=mlp_json_body(batch, seed))
            assert r.status_code == 200, r.text
    bad = mlp_json_body(1)
    bad["inputs"][0]["shape"] = [1, 63]
    assert healthy.post("/v2/models/mlp/infer", json=bad).status_code == 400

    r = healthy.admin_get("/metrics")
    assert r.status_code == 200
    body = r.text
    # The histograms have samples, so their buckets are in what promtool reads.
    for name in ("request_duration_seconds", "queue_duration_seconds", "compute_duration_seconds", "batch_size"):
        assert re.search(rf'^switchyard_{name}_bucket\{{[^}}]*model="mlp"', body, re.M), f"no {name} buckets"
    promtool_check_metrics(prom_tools, body)


def test_promtool_accepts_metrics_with_routing_and_shadows(fixture_store, start_routed_server, prom_tools):
    """A gateway with a champion, a challenger and a shadow also exports the route label and
    the switchyard_shadow_* series; promtool must accept those too."""
    store, _ = fixture_store
    srv = start_routed_server(
        store,
        {"name": "mlp", "versions": [1, 2, 3]},
        {"champion": 1, "challengers": {2: 50}, "shadows": {3: 100}},
        name="shadowed",
    )
    for seed in range(20):
        r = srv.post("/v2/models/mlp/infer", json=mlp_json_body(2, seed))
        assert r.status_code == 200, r.text
    # Shadows run after the answer is sent: wait until every mirrored request is counted.
    deadline = time.monotonic() + 10
    while True:
        body = srv.admin_get("/metrics").text
        mirrored = sum(
            int(m[1]) for m in re.finditer(r'^switchyard_shadow_requests_total\{[^}]*\} (\d+)$', body, re.M)
        )
        if mirrored >= 20:
            break
        assert time.monotonic() < deadline, f"only {mirrored} of 20 shadow requests counted:\n{body}"
        time.sleep(0.05)
    assert re.search(r"^switchyard_shadow_max_abs_diff_bucket\{", body, re.M), body
    promtool_check_metrics(prom_tools, body)


# --------------------------------------------------------------------------------------------
# A real scrape


def test_prometheus_scrapes_canary_split(fixture_store, start_routed_server, prom_tools, tmp_path):
    """Prometheus scrapes a canary gateway (champion v1, challenger v2 at 50 %) every second
    while requests stream in. PromQL over the stored samples must show the counters growing
    across several scrapes, a finite sub-second p99 per version from the latency histogram, and
    per-version counts equal to the versions that answered."""
    store, _ = fixture_store
    srv = start_routed_server(
        store,
        {"name": "mlp", "versions": [1, 2], "engine": {"instances": 2, "max_batch": 8, "batch_delay_us": 200}},
        {"champion": 1, "challengers": {2: 50}},
        name="canary",
    )
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    with run_prometheus(prom_tools, workdir, srv.admin_host_port) as prom:
        # Traffic starts only once a scrape has succeeded, so that the scrapes during it see
        # the counters grow.
        prom.poll(
            'up{job="switchyard"}',
            lambda res: len(res) == 1 and sample_value(res[0]) == 1,
            timeout=15,
            what="the gateway's admin port to be scraped (up == 1)",
        )

        # A steady stream, paced on a schedule: request i goes out at start + i * gap.
        answered: collections.Counter[int] = collections.Counter()
        gap = CANARY_SECONDS / CANARY_REQUESTS
        start = time.monotonic()
        with requests.Session() as http:
            for i in range(CANARY_REQUESTS):
                delay = start + i * gap - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                r = http.post(f"{srv.public}/v2/models/mlp/infer", json=mlp_json_body(1 + i % 4, i), timeout=30)
                assert r.status_code == 200, r.text
                answered[int(r.json()["model_version"])] += 1
        assert set(answered) == {1, 2}, f"versions that answered: {dict(answered)}"
        assert 0.3 <= answered[2] / CANARY_REQUESTS <= 0.7, f"challenger share off 50 %: {dict(answered)}"

        # Wait for a scrape after the last request: the total reaches what was sent.
        total = 'sum(switchyard_requests_total{model="mlp"})'
        prom.poll(
            total,
            lambda res: len(res) == 1 and sample_value(res[0]) == CANARY_REQUESTS,
            timeout=10 * SCRAPE_INTERVAL_S,
            what=f"Prometheus to see all {CANARY_REQUESTS} requests",
        )

        # Every scrape's total, from the raw samples (all series of one scrape share its
        # timestamp): several scrapes saw the stream in progress, and the totals only grew.
        raw = prom.query('switchyard_requests_total{model="mlp"}[5m]')
        per_scrape: dict[float, float] = collections.defaultdict(float)
        for series in raw:
            for t, v in series["values"]:
                per_scrape[float(t)] += float(v)
        totals = [per_scrape[t] for t in sorted(per_scrape)]
        assert totals == sorted(totals), f"the request total went down between scrapes: {totals}"
        in_progress = {v for v in totals if 0 < v < CANARY_REQUESTS}
        assert len(in_progress) >= 3, f"fewer than 3 scrapes saw the stream in progress: {totals}"

        # Counts per version and route: exactly the versions that answered.
        by_version = {
            (s["metric"]["version"], s["metric"]["route"], s["metric"]["status"]): sample_value(s)
            for s in prom.query('sum by (version, route, status) (switchyard_requests_total{model="mlp"})')
        }
        assert by_version == {
            ("1", "champion", "200"): answered[1],
            ("2", "challenger", "200"): answered[2],
        }, f"Prometheus: {by_version}; the gateway answered {dict(answered)}"
        # The latency histogram counted the same requests.
        hist_counts = {
            s["metric"]["version"]: sample_value(s)
            for s in prom.query('sum by (version) (switchyard_request_duration_seconds_count{model="mlp"})')
        }
        assert hist_counts == {"1": answered[1], "2": answered[2]}, hist_counts

        # p99 latency per version, from the buckets. The TSDB is younger than the 1 m window,
        # so the rate covers the whole stream.
        p99_expr = (
            "histogram_quantile(0.99, sum by (le, version) "
            '(rate(switchyard_request_duration_seconds_bucket{model="mlp"}[1m])))'
        )
        p99 = {s["metric"]["version"]: sample_value(s) for s in prom.query(p99_expr)}
        assert set(p99) == {"1", "2"}, f"p99 series: {p99}"
        for version, seconds in p99.items():
            assert math.isfinite(seconds) and 0 < seconds < 1.0, f"p99 of v{version}: {seconds} s"

        assert prom.proc.poll() is None, f"prometheus exited:\n{prom.log_tail()}"
    assert srv.alive(), f"the gateway died:\n{srv.log_tail()}"


# --------------------------------------------------------------------------------------------
# The shipped rules and dashboard

DEPLOY = REPO / "deploy"

# Series that exist only once their event happened: their labels name what happened (the
# versions a guard trip moved traffic between), so there is nothing to export before it.
EVENT_ONLY = {"switchyard_guard_trips_total"}


def test_shipped_rules_pass_promtool_and_use_only_metrics_the_gateway_exports(
    fixture_store, start_routed_server, prom_tools, tmp_path
):
    """deploy/prometheus/rules.yml passes `promtool check rules` and its unit tests
    (rules_test.yml), and every metric the rules and deploy/grafana/switchyard.json name is on a
    running gateway's /metrics (a guarded canary with a shadow, after traffic)."""
    rules = DEPLOY / "prometheus" / "rules.yml"
    for args, cwd in ((["check", "rules", str(rules)], REPO), (["test", "rules", "rules_test.yml"], rules.parent)):
        proc = subprocess.run([str(prom_tools.promtool), *args], capture_output=True, text=True, timeout=60, cwd=cwd)
        assert proc.returncode == 0, f"promtool {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    dashboard = json.loads((DEPLOY / "grafana" / "switchyard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["query"])
    used = set()
    for text in [rules.read_text(), *exprs]:
        used |= {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\bswitchyard_[a-z_]+", text)}
    assert used, "no metric names found"

    store, _ = fixture_store
    config = tmp_path / "guarded.toml"
    config.write_text(
        routed_config_toml(store, {"name": "mlp", "versions": [1, 2, 3]}, {"champion": 1, "challengers": {2: 50}, "shadows": {3: 100}})
        + "[model.guard]\np99_ms = 5000\n"
    )
    srv = start_server(config, store, tmp_path / "guarded.log")
    try:
        for seed in range(20):
            assert srv.post("/v2/models/mlp/infer", json=mlp_json_body(1, seed)).status_code == 200
        exported = set(re.findall(r"^(switchyard_[a-z_]+?)(?:_bucket|_sum|_count)?[{ ]", srv.admin_get("/metrics").text, re.M))
    finally:
        assert stop_server(srv) == 0
    missing = sorted(used - exported - EVENT_ONLY)
    assert not missing, f"the rules or dashboard use metrics the gateway does not export: {missing}"
