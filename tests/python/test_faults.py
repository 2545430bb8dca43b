"""Faults from outside the process: the registry locked by another process while serving,
SIGKILL of the server in the middle of lineage writes, SIGKILL of `models register` at random
points, and a corrupt or missing artifact named by a hot reload.

Each test has its own store (never the session one) and its own server. Lineage is read back
straight from `registry.db` with Python's sqlite3, matched on the `x-request-id` each request sent.
(A config file made unreadable or deleted while serving is covered by tests/e2e/reload.rs.)
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from conftest import (
    MANIFESTS,
    MODELS,
    Server,
    _env,
    artifact_path,
    assert_answers_valid,
    config_toml,
    mlp_json_body,
    register,
    run_cli,
    start_server,
    stop_server,
    switchyard_bin,
)

MLP = [{"name": "mlp", "versions": [1]}]
HEX64 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------------------------
# Helpers


def registry_db(store: Path) -> Path:
    return store / "registry.db"


@contextlib.contextmanager
def db(store: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived connection to the store's registry (autocommit; waits up to 10 s for locks)."""
    conn = sqlite3.connect(registry_db(store), timeout=10, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def integrity(store: Path) -> list[str]:
    with db(store) as conn:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]


def lineage_rows(store: Path, prefix: str) -> list[tuple[str, int, int, str]]:
    """(request_id, version, status, route) of every lineage row whose request id starts with
    `prefix` (no LIKE wildcards in prefixes used here)."""
    with db(store) as conn:
        return conn.execute(
            "SELECT request_id, version, status, route FROM lineage WHERE request_id LIKE ? ORDER BY id",
            (prefix + "%",),
        ).fetchall()


def wait_for(what: str, check: Callable[[], object], timeout: float, interval: float = 0.05):
    """Polls `check` until it returns something truthy; fails naming `what` (and the last value)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


def status(srv: Server) -> dict:
    r = srv.admin_get("/admin/status", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def metric(srv: Server, name: str) -> float | None:
    """The value of an unlabelled sample on the admin /metrics, or None if absent."""
    text = srv.admin_get("/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m[1]) if m else None


def infer(srv: Server, request_id: str, timeout: float = 10) -> requests.Response:
    return srv.post(
        "/v2/models/mlp/infer", json=mlp_json_body(1, seed=len(request_id)), headers={"x-request-id": request_id},
        timeout=timeout,
    )


@contextlib.contextmanager
def owned_server(tmp_path: Path, store: Path, models: list[dict], name: str) -> Iterator[Server]:
    """A server this test stops (or kills) itself; whatever happens it is gone afterwards.
    Unlike `start_extra_server`, its exit code is not checked at teardown."""
    config = tmp_path / f"{name}.toml"
    config.write_text(config_toml(store, models))
    srv = start_server(config, store, tmp_path / f"{name}.log")
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
        stop_server(srv)  # reaps it, closes its pipe, forgets it


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# 1. The registry locked by another process while serving


LOCK_S = 8.0
LOCK_REQUESTS = 150


def test_registry_locked_while_serving(start_extra_server, tmp_path):
    """Another process holds the registry's write lock for 8 s while 150 requests arrive: every
    request is answered 200 and the server stays ready; the lineage writer's first attempt fails
    after the 5 s busy timeout, so /admin/status turns `degraded` (write_errors >= 1, metrics
    agree) while the lock is held. Once it is released the writer catches up: status is `ok`
    again and each answered request has exactly one lineage record."""
    store = tmp_path / "store"
    register(store, "mlp", MODELS / "mlp_v1.onnx")
    srv = start_extra_server(store, MLP, name="locked")

    # The writer works, and is idle, before the lock.
    assert infer(srv, "faults-lock-warmup").status_code == 200
    wait_for("warm-up record written", lambda: status(srv)["lineage"]["written"] >= 1, 10)
    before = status(srv)
    assert before["status"] == "ok" and before["lineage"]["healthy"] is True, before
    assert before["lineage"]["write_errors"] == 0, before

    lock = sqlite3.connect(registry_db(store), timeout=0, isolation_level=None)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                lock.execute("BEGIN EXCLUSIVE")
                break
            except sqlite3.OperationalError:  # the writer is mid-commit; try again
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        locked_at = time.monotonic()

        answers: dict[str, int] = {}
        not_ready: list[tuple[float, int]] = []
        degraded_seen: dict | None = None
        metrics_while_degraded: tuple[float | None, float | None] | None = None
        for i in range(LOCK_REQUESTS):
            time.sleep(max(0.0, locked_at + i * LOCK_S / LOCK_REQUESTS - time.monotonic()))
            rid = f"faults-lock-{i:03d}-{uuid.uuid4().hex[:8]}"
            answers[rid] = infer(srv, rid).status_code
            ready = srv.get("/v2/health/ready", timeout=5).status_code
            if ready != 200:
                not_ready.append((round(time.monotonic() - locked_at, 2), ready))
            if degraded_seen is None:
                s = status(srv)
                if s["status"] == "degraded":
                    degraded_seen = dict(s, at_s=round(time.monotonic() - locked_at, 2))
                    metrics_while_degraded = (
                        metric(srv, "switchyard_lineage_write_errors_total"),
                        metric(srv, "switchyard_lineage_store_healthy"),
                    )
        # The last requests may land just before the 5 s mark on a slow machine: keep looking
        # while the lock is still held.
        while degraded_seen is None and time.monotonic() < locked_at + LOCK_S:
            s = status(srv)
            if s["status"] == "degraded":
                degraded_seen = dict(s, at_s=round(time.monotonic() - locked_at, 2))
                metrics_while_degraded = (
                    metric(srv, "switchyard_lineage_write_errors_total"),
                    metric(srv, "switchyard_lineage_store_healthy"),
                )
            time.sleep(0.05)
        held_s = time.monotonic() - locked_at
    finally:
        if lock.in_transaction:
            lock.execute("ROLLBACK")
        lock.close()

    bad = {rid: code for rid, code in answers.items() if code != 200}
    assert not bad, f"requests not answered 200 while the registry was locked: {bad}"
    assert not not_ready, f"/v2/health/ready was not 200 while the registry was locked: {not_ready}"
    assert degraded_seen is not None, f"/admin/status never said degraded during the {held_s:.1f} s lock"
    assert degraded_seen["lineage"]["healthy"] is False, degraded_seen
    assert degraded_seen["lineage"]["write_errors"] >= 1, degraded_seen
    assert degraded_seen["lineage"]["queued"] >= 1 or degraded_seen["lineage"]["written"] == 1, degraded_seen
    errors_metric, healthy_metric = metrics_while_degraded
    assert errors_metric is not None and errors_metric >= 1, metrics_while_degraded
    assert healthy_metric == 0, metrics_while_degraded

    # Released: the writer catches up and says so.
    def caught_up():
        s = status(srv)
        lin = s["lineage"]
        return s if s["status"] == "ok" and lin["healthy"] and lin["queued"] == 0 else None

    after = wait_for("status back to ok with nothing queued", caught_up, 15)
    recovered_s = time.monotonic() - locked_at
    assert after["lineage"]["dropped"] == 0, after
    assert metric(srv, "switchyard_lineage_store_healthy") == 1, "gauge not back to 1"

    rows = wait_for(
        "every answered request's record in the registry",
        lambda: (r := lineage_rows(store, "faults-lock-")) and len(r) >= len(answers) + 1 and r,
        10,
    )
    ids = collections.Counter(rid for rid, *_ in rows)
    dupes = {rid: n for rid, n in ids.items() if n > 1}
    assert not dupes, f"request ids with more than one lineage record: {dupes}"
    missing = set(answers) - set(ids)
    assert not missing, f"{len(missing)} answered requests have no lineage record: {sorted(missing)[:5]}"
    assert set(ids) == set(answers) | {"faults-lock-warmup"}, set(ids) ^ (set(answers) | {"faults-lock-warmup"})
    assert sum(1 for c in answers.values() if c == 200) == len(rows) - 1
    assert all(status_ == 200 and version == 1 for _, version, status_, _ in rows), rows[:5]
    # Everything is written now (warm-up + answers); the counters agree with the rows.
    final = status(srv)["lineage"]
    assert final["written"] == len(rows) and final["queued"] == 0, (final, len(rows))
    assert metric(srv, "switchyard_lineage_records_written_total") == len(rows)
    assert metric(srv, "switchyard_lineage_write_errors_total") == final["write_errors"] >= 1, final
    print(
        f"\nlock held {held_s:.1f} s: degraded seen at {degraded_seen['at_s']} s "
        f"(write_errors {degraded_seen['lineage']['write_errors']}, queued {degraded_seen['lineage']['queued']}); "
        f"ok again at {recovered_s:.1f} s with write_errors {after['lineage']['write_errors']}; "
        f"{len(rows) - 1} records for {len(answers)} answers"
    )


def test_lineage_healthy_gauge_reads_1_from_start(start_extra_server, tmp_path):
    store = tmp_path / "store"
    register(store, "mlp", MODELS / "mlp_v1.onnx")
    srv = start_extra_server(store, MLP, name="gauge")
    assert infer(srv, "faults-gauge").status_code == 200
    wait_for("record written", lambda: status(srv)["lineage"]["written"] >= 1, 10)
    assert status(srv)["lineage"]["healthy"] is True
    assert metric(srv, "switchyard_lineage_store_healthy") == 1


# --------------------------------------------------------------------------------------------
# 2. SIGKILL of the server in the middle of lineage writes


KILL_CLIENTS = 4
KILL_AFTER_S = 2.0


def test_sigkill_during_lineage_writes(start_extra_server, tmp_path):
    """Four clients hammer mlp, the server is SIGKILLed mid-load. The registry is intact
    (integrity_check ok); the lineage rows written are a subset of the requests sent, one per
    request, all 200s, and no more than the requests answered plus those cut off in flight (a
    record is handed over before its response is written, so a request cut off by the kill may
    still have its record). A server restarted on the same store serves and records again."""
    store = tmp_path / "store"
    register(store, "mlp", MODELS / "mlp_v1.onnx")

    sent: dict[str, object] = {}  # request id -> status code, or the exception's class name
    sent_lock = threading.Lock()
    stop = threading.Event()

    def client(n: int, srv: Server) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            rid = f"faults-kill-{n}-{i:05d}"
            i += 1
            try:
                r = session.post(
                    srv.public + "/v2/models/mlp/infer", json=mlp_json_body(1, seed=i),
                    headers={"x-request-id": rid}, timeout=10,
                )
                outcome: object = r.status_code
            except requests.RequestException as e:
                outcome = type(e).__name__
            with sent_lock:
                sent[rid] = outcome
            if not isinstance(outcome, int):
                return  # the server is gone
        session.close()

    with owned_server(tmp_path, store, MLP, "killed") as srv:
        threads = [threading.Thread(target=client, args=(n, srv), daemon=True) for n in range(KILL_CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(KILL_AFTER_S)
        written_before = status(srv)["lineage"]["written"]
        os.kill(srv.proc.pid, signal.SIGKILL)
        rc = srv.proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=15)
        assert not any(t.is_alive() for t in threads), "a client thread hung after the kill"
    assert rc == -signal.SIGKILL, rc

    ok = {rid for rid, o in sent.items() if o == 200}
    cut_off = {rid for rid, o in sent.items() if not isinstance(o, int)}
    other = {rid: o for rid, o in sent.items() if isinstance(o, int) and o != 200}
    assert not other, f"non-200 answers before the kill: {other}"
    assert len(ok) >= 50, f"only {len(ok)} requests answered before the kill; the test shows little"
    assert written_before >= 1, "no lineage record was written before the kill; the test shows little"

    assert integrity(store) == ["ok"]
    rows = lineage_rows(store, "faults-kill-")
    ids = collections.Counter(rid for rid, *_ in rows)
    assert not {r: n for r, n in ids.items() if n > 1}, "duplicate lineage records"
    assert set(ids) <= set(sent), f"records for requests never sent: {sorted(set(ids) - set(sent))[:5]}"
    assert len(rows) <= len(ok) + len(cut_off), (len(rows), len(ok), len(cut_off))
    assert all(s == 200 and v == 1 for _, v, s, _ in rows), rows[:5]
    assert len(rows) >= written_before, (len(rows), written_before)  # committed rows survived
    print(
        f"\nkill -9: {len(sent)} sent, {len(ok)} answered 200, {len(cut_off)} cut off, "
        f"{len(rows)} lineage rows on disk ({len(ok & set(ids))} of them answered), "
        f"{len(ok - set(ids))} answered without a record (lost with the process)"
    )

    # Restart on the same store: it serves and its records are written.
    srv2 = start_extra_server(store, MLP, name="restarted")
    assert_answers_valid(srv2)
    r = infer(srv2, "faults-kill-after-restart")
    assert r.status_code == 200, r.text
    rows = wait_for("the restarted server's record", lambda: lineage_rows(store, "faults-kill-after-restart"), 10)
    assert [(rid, v, s) for rid, v, s, _ in rows] == [("faults-kill-after-restart", 1, 200)], rows
    s = status(srv2)
    assert s["status"] == "ok" and s["lineage"]["write_errors"] == 0, s
    assert integrity(store) == ["ok"]


# --------------------------------------------------------------------------------------------
# 3. SIGKILL of `models register` at random points


REGISTER_FIXTURES = [
    ("mlp_v1", "mlp_v1"),
    ("mlp_v2", "mlp_v2"),
    ("mlp_v3", "mlp_v3"),
    ("mixed", "mixed"),
    ("dtypes", "dtypes"),
    ("slow", "slow"),
    ("faulty", "faulty"),
]
REGISTER_MODELS = ["m0", "m1", "m2"]
REGISTER_ITERATIONS = 30
REGISTER_SEED = 20261122


def register_cmd(store: Path, model: str, stem: str, manifest: str) -> list[str]:
    return [
        str(switchyard_bin()), "models", "register", "--store", str(store), "--model", model,
        "--file", str(MODELS / f"{stem}.onnx"), "--manifest", str(MANIFESTS / f"{manifest}.toml"), "--json",
    ]


def store_state(store: Path) -> tuple[int, set[str]]:
    """(version rows, every file name under artifacts/) of a store, which may not exist yet."""
    files = {p.name for p in (store / "artifacts").rglob("*") if p.is_file()}
    rows = 0
    if registry_db(store).exists():
        with db(store) as conn:
            try:
                rows = conn.execute("SELECT count(*) FROM versions").fetchone()[0]
            except sqlite3.OperationalError:  # no schema yet
                pass
    return rows, files


def test_sigkill_during_registration(tmp_path):
    """`models register` SIGKILLed after a random delay, 30 times (seeded), on a fresh store.
    Delays are drawn over the span of a whole registration, measured first on a scratch store
    (about 0.2–0.4 s: most of it is opening the registry and ONNX Runtime, so a 0–150 ms delay
    would only ever kill before the store is touched). Afterwards: the registry is intact; every
    version row has its artifact, with the right sha256 and size, and a `registered` event;
    versions are numbered 1..n per model; `models list` works; registering everything again
    (unkilled) succeeds, keeps the numbers already given and adds none for bytes already there.
    Files in the store other than artifacts and the registry must be temp files of the artifact
    writer, and every file named like an artifact must hash to its name."""
    env = _env()

    # How long one registration takes here and now.
    calib = tmp_path / "calib"
    spans = []
    for i in range(3):
        t = time.monotonic()
        subprocess.run(register_cmd(calib, f"c{i}", "mlp_v1", "mlp_v1"), env=env, check=True, capture_output=True)
        spans.append(time.monotonic() - t)
    span = sorted(spans)[1]

    store = tmp_path / "store"
    rng = random.Random(REGISTER_SEED)
    log = []  # (i, model, stem, delay_ms, outcome)
    completed: dict[tuple[str, str], dict] = {}  # (model, stem) -> the CLI's JSON
    state: tuple[int, set[str], bool] = (0, set(), False)
    for i in range(REGISTER_ITERATIONS):
        model = rng.choice(REGISTER_MODELS)
        stem, manifest = rng.choice(REGISTER_FIXTURES)
        delay = rng.uniform(0.25, 1.1) * span
        proc = subprocess.Popen(
            register_cmd(store, model, stem, manifest),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=delay)
            outcome = f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
            outcome = "killed" if proc.returncode == -signal.SIGKILL else f"exit {proc.returncode}"
        if proc.returncode == 0:
            completed[(model, stem)] = json.loads(out)
        elif proc.returncode != -signal.SIGKILL:
            pytest.fail(f"iteration {i}: register {model} {stem} exited {proc.returncode}:\n{err.decode()[-3000:]}")
        else:  # where the kill landed, judged by what changed in the store
            rows_now, files_now = store_state(store)
            if rows_now > state[0]:
                outcome = "killed after commit"
            elif files_now - state[1]:
                outcome = "killed after the artifact write began"
            elif registry_db(store).exists() and not state[2]:
                outcome = "killed after creating registry.db"
        state = (*store_state(store), registry_db(store).exists())
        log.append((i, model, stem, round(delay * 1000), outcome))
    print(f"\nregistration ~{span * 1000:.0f} ms; outcomes: {dict(collections.Counter(o for *_, o in log))}")

    assert integrity(store) == ["ok"], log

    # Every version row: artifact present and intact, a `registered` event, numbers 1..n.
    with db(store) as conn:
        versions = conn.execute(
            "SELECT m.name, v.number, v.sha256, v.size, v.model_id FROM versions v JOIN models m ON m.id = v.model_id "
            "ORDER BY m.name, v.number"
        ).fetchall()
        events = collections.Counter(
            conn.execute("SELECT model_id, version_number FROM events WHERE kind = 'registered'").fetchall()
        )
        models_without_versions = conn.execute(
            "SELECT name FROM models WHERE id NOT IN (SELECT model_id FROM versions)"
        ).fetchall()
    assert not models_without_versions, f"model rows without versions: {models_without_versions}"
    by_model: dict[str, list[int]] = collections.defaultdict(list)
    for name, number, sha, size, model_id in versions:
        by_model[name].append(number)
        path = artifact_path(store, sha)
        assert path.is_file(), f"{name} v{number}: artifact {path} missing"
        assert sha256_file(path) == sha, f"{name} v{number}: artifact {path} does not hash to its name"
        assert path.stat().st_size == size, f"{name} v{number}: size {path.stat().st_size} != {size}"
        assert events[(model_id, number)] == 1, f"{name} v{number}: {events[(model_id, number)]} registered events"
    for name, numbers in by_model.items():
        assert numbers == list(range(1, len(numbers) + 1)), f"{name}: version numbers {numbers}"
    for (model, stem), out in completed.items():
        assert (model, out["version"], out["sha256"]) in {(n, v, s) for n, v, s, *_ in versions}, (model, stem, out)

    listed = json.loads(run_cli("models", "list", "--store", str(store), "--json").stdout)
    assert {m["name"]: (m["versions"], m["latest"]) for m in listed} == {
        name: (len(nums), max(nums)) for name, nums in by_model.items()
    }, listed

    # What else the kills left in the store.
    leftovers = []
    for path in sorted(store.rglob("*")):
        rel = path.relative_to(store)
        if path.is_dir():
            continue
        if rel.parts[0] != "artifacts":
            assert rel.name in {"registry.db", "registry.db-wal", "registry.db-shm", "registry.db-journal"}, rel
            continue
        assert rel.parts[:2] == ("artifacts", "sha256") and len(rel.parts) == 4, f"unexpected file {rel}"
        if HEX64.fullmatch(rel.name):
            assert rel.parts[2] == rel.name[:2], rel
            assert sha256_file(path) == rel.name, f"{rel}: a file named as an artifact that does not hash to its name"
        else:
            assert re.fullmatch(r"\.[0-9a-f]{64}\.tmp-\d+-\d+", rel.name), f"unexpected file {rel}"
            leftovers.append(str(rel))
    referenced = {sha for _, _, sha, *_ in versions}
    stored = {p.name for p in store.rglob("*") if HEX64.fullmatch(p.name)}
    unreferenced = sorted(stored - referenced)
    print(f"leftover temp files: {leftovers or 'none'}; unreferenced artifacts: {unreferenced or 'none'}")

    # Register everything again, unkilled, and the pairs never tried too.
    before = {(n, s): v for n, v, s, *_ in versions}
    shas = {stem: sha256_file(MODELS / f"{stem}.onnx") for stem, _ in REGISTER_FIXTURES}
    for model in REGISTER_MODELS:
        for stem, manifest in REGISTER_FIXTURES:
            out = json.loads(run_cli(*register_cmd(store, model, stem, manifest)[1:]).stdout)
            assert out["sha256"] == shas[stem]
            if (model, shas[stem]) in before:
                assert out["created"] is False and out["version"] == before[(model, shas[stem])], (model, stem, out)
            else:
                assert out["created"] is True, (model, stem, out)
    assert integrity(store) == ["ok"]
    with db(store) as conn:
        rows = conn.execute(
            "SELECT m.name, v.number, v.sha256 FROM versions v JOIN models m ON m.id = v.model_id "
            "ORDER BY m.name, v.number"
        ).fetchall()
        registered_events = conn.execute("SELECT count(*) FROM events WHERE kind = 'registered'").fetchone()[0]
    for model in REGISTER_MODELS:
        mine = [(v, s) for n, v, s in rows if n == model]
        assert [v for v, _ in mine] == list(range(1, len(REGISTER_FIXTURES) + 1)), (model, mine)
        assert sorted(s for _, s in mine) == sorted(shas.values()), (model, mine)
    assert registered_events == len(rows)
    for (model, sha), v in before.items():
        assert (model, v, sha) in rows, f"{model} v{v} changed after re-registration"


# --------------------------------------------------------------------------------------------
# 4. A corrupt or missing artifact named by a hot reload


def reload(srv: Server) -> requests.Response:
    return requests.post(srv.admin + "/admin/reload", json={"actor": "test-faults"}, timeout=60)


def served_versions(srv: Server) -> list[tuple[int, str]]:
    r = srv.admin_get("/admin/models/mlp")
    assert r.status_code == 200, r.text
    return [(v["version"], v["state"]) for v in r.json()["versions"]]


def assert_v1_serves(srv: Server, rid: str) -> None:
    r = infer(srv, rid)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "1"
    assert_answers_valid(srv)


def test_reload_refuses_corrupt_or_missing_artifact(start_extra_server, tmp_path):
    """Serving mlp v1 (v1..v3 registered). v3's artifact is corrupted, the config edited to load
    v3 too: the reload is refused with 422 naming version 3 and both hashes; v1 keeps serving and
    only v1 is loaded. Then v2's artifact is deleted and the config names v2: 422 naming version
    2 and the missing file. Going back to the original config reloads fine."""
    store = tmp_path / "store"
    regs = [register(store, "mlp", MODELS / f"mlp_v{i}.onnx") for i in (1, 2, 3)]
    assert [r["version"] for r in regs] == [1, 2, 3]
    srv = start_extra_server(store, [{"name": "mlp", "versions": [1], "default_version": 1}], name="reload-corrupt")
    assert served_versions(srv) == [(1, "ready")]

    # Corrupt v3: one bit of one byte.
    v3 = artifact_path(store, regs[2]["sha256"])
    data = bytearray(v3.read_bytes())
    data[len(data) // 2] ^= 0x01
    v3.chmod(0o644)
    v3.write_bytes(bytes(data))
    actual = hashlib.sha256(data).hexdigest()

    srv.config.write_text(config_toml(store, [{"name": "mlp", "versions": [1, 3], "default_version": 1}]))
    r = reload(srv)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body.get("error") and isinstance(body.get("problems"), list) and body["problems"], body
    problems = " ".join(body["problems"])
    assert "version 3" in problems, body
    assert regs[2]["sha256"] in problems and actual in problems, body
    assert "corrupt" in problems.lower() or "mismatch" in problems.lower(), body
    print(f"\ncorrupt v3: {r.status_code} {body}")
    assert_v1_serves(srv, "faults-reload-corrupt")
    assert served_versions(srv) == [(1, "ready")]
    assert srv.post("/v2/models/mlp/versions/3/infer", json=mlp_json_body()).status_code in (404, 503)

    # Delete v2's artifact and name v2.
    v2 = artifact_path(store, regs[1]["sha256"])
    v2.unlink()
    srv.config.write_text(config_toml(store, [{"name": "mlp", "versions": [1, 2], "default_version": 1}]))
    r = reload(srv)
    assert r.status_code == 422, r.text
    body = r.json()
    problems = " ".join(body.get("problems", []))
    assert "version 2" in problems, body
    assert regs[1]["sha256"] in problems or str(v2) in problems, body
    assert any(w in problems.lower() for w in ("missing", "not found", "no such file")), body
    print(f"missing v2: {r.status_code} {body}")
    assert_v1_serves(srv, "faults-reload-missing")
    assert served_versions(srv) == [(1, "ready")]

    # The original config again: nothing to load, accepted.
    srv.config.write_text(config_toml(store, [{"name": "mlp", "versions": [1], "default_version": 1}]))
    r = reload(srv)
    assert r.status_code == 200 and r.json()["result"] == "ok", r.text
    assert served_versions(srv) == [(1, "ready")]
    assert srv.alive()
