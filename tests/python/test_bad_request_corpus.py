"""The bad-request corpus (tests/corpus/bad_requests.jsonl, format in tests/corpus/README.md), one
test per case, sent as raw bytes over a socket so malformed headers and bodies go out exactly as
written. Each case must be answered with its status and a JSON body {"error": "..."} whose message
matches the case's regex; then the server must still be running and answer a valid mlp request
correctly (compared with onnxruntime). Cases marked `rss_guard` must also be refused quickly and
without the server's peak RSS growing (huge declared shapes are refused before any allocation).

Also here: slowloris tests (a request head that never ends must be closed by the header timeout
while the server keeps answering others)."""

from __future__ import annotations

import base64
import http.client
import json
import re
import selectors
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import (
    MODELS,
    REPO,
    Server,
    assert_answers_valid,
    config_toml,
    register,
    start_server,
    stop_server,
)

CORPUS = REPO / "tests" / "corpus" / "bad_requests.jsonl"

# The dedicated server for `"server": "small"` cases: body limit 1 MiB, so 413 cases send ~2 MiB
# instead of the session server's 64 MiB.
SMALL_MAX_BODY = 1 << 20

SEND_TIMEOUT_S = 30.0
DEFAULT_MAX_SECONDS = 5.0
# How much the server's peak resident memory (VmHWM) may grow during an `rss_guard` case.
RSS_GROWTH_LIMIT_KIB = 64 * 1024

# The server's header timeout (gateway/src/http/server.rs HEADER_READ_TIMEOUT is 10 s), plus slack.
HEADER_TIMEOUT_BOUND_S = 15.0

KEYS = {
    "name", "method", "path", "headers", "body_text", "body_b64", "body_parts", "oversize", "chunked",
    "http_version", "status", "message", "protocol_level", "server", "rss_guard", "max_seconds", "xfail", "note",
}  # fmt: skip
BODY_KEYS = ("body_text", "body_b64", "body_parts", "oversize")


# --------------------------------------------------------------------------------------------
# The corpus


def load_corpus(path: Path = CORPUS) -> list[dict]:
    """Parses and checks the corpus; a malformed case fails collection with its line number."""
    cases = []
    names = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        case = json.loads(line)
        unknown = set(case) - KEYS
        assert not unknown, f"{where}: unknown keys {sorted(unknown)}"
        for key in ("name", "method", "path", "headers", "status", "message"):
            assert key in case, f"{where}: missing {key!r}"
        assert re.fullmatch(r"[a-z0-9_]+", case["name"]), f"{where}: bad name {case['name']!r}"
        assert case["name"] not in names, f"{where}: duplicate name {case['name']!r}"
        names.add(case["name"])
        assert sum(k in case for k in BODY_KEYS) <= 1, f"{where}: more than one of {BODY_KEYS}"
        statuses = case["status"] if isinstance(case["status"], list) else [case["status"]]
        assert statuses and all(isinstance(s, int) and 400 <= s < 600 for s in statuses), where
        if case.get("protocol_level"):
            assert case["message"] is None, f"{where}: protocol-level cases have no message"
        else:
            assert isinstance(case["message"], str) and case["message"], where
            re.compile(case["message"])
        assert case.get("server", "session") in ("session", "small"), where
        assert isinstance(case["headers"], (dict, list)), where
        cases.append(case)
    return cases


CASES = load_corpus()


def case_params():
    for case in CASES:
        marks = []
        if case.get("xfail"):
            marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=case["xfail"]))
        yield pytest.param(case, id=case["name"], marks=marks)


def body_bytes(case: dict) -> bytes:
    if "body_text" in case:
        return case["body_text"].encode("utf-8")
    if "body_b64" in case:
        return base64.b64decode(case["body_b64"], validate=True)
    if "oversize" in case:
        return b"x" * case["oversize"]
    out = bytearray()
    for part in case.get("body_parts", []):
        if "text" in part:
            out += part["text"].encode("utf-8")
        elif "hex" in part:
            out += bytes.fromhex(part["hex"])
        elif "b64" in part:
            out += base64.b64decode(part["b64"], validate=True)
        elif "repeat" in part:
            out += part["repeat"].encode("utf-8") * part["times"]
        elif "indexed" in part:
            sep = part.get("sep", "").encode("utf-8")
            out += sep.join(part["indexed"].replace("{i}", str(i)).encode("utf-8") for i in range(part["times"]))
        else:
            raise AssertionError(f"unknown body part {part!r}")
    return bytes(out)


def chunked(body: bytes, size: int = 64 * 1024) -> bytes:
    frames = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(frames) + b"0\r\n\r\n"


def build_request(case: dict, host_port: str) -> tuple[bytes, bytes]:
    """(head, body) exactly as they go on the wire. Adds Host, Connection: close and Content-Length
    (or chunked framing) unless the case sets them; header text is sent as Latin-1, so a case can
    hold any byte as U+0000..U+00FF."""
    headers = list(case["headers"].items()) if isinstance(case["headers"], dict) else [tuple(h) for h in case["headers"]]
    present = {k.lower() for k, _ in headers}
    body = body_bytes(case)
    if case.get("chunked"):
        body = chunked(body)
        headers.append(("Transfer-Encoding", "chunked"))
    elif not present & {"content-length", "transfer-encoding"}:
        headers.append(("Content-Length", str(len(body))))
    if "host" not in present:
        headers.insert(0, ("Host", host_port))
    if "connection" not in present:
        headers.append(("Connection", "close"))
    line = f"{case['method']} {case['path']} {case.get('http_version', 'HTTP/1.1')}\r\n"
    head = line + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1"), body


def send_raw(host_port: str, method: str, data: bytes, timeout: float = SEND_TIMEOUT_S) -> tuple[int, dict, bytes]:
    """Sends `data` on a fresh connection (while reading, so a server that answers before the body
    is all sent is heard) and returns (status, headers with lower-case names, body)."""
    host, port = host_port.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    send_error: list[BaseException] = []

    def writer():
        try:
            sock.sendall(data)
        except OSError as e:  # the server answered and closed before taking it all: expected for 413
            send_error.append(e)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, body
    finally:
        sock.close()
        thread.join(timeout=10)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


@pytest.fixture(scope="module")
def small_server(tmp_path_factory) -> Server:
    """mlp v1 behind a 1 MiB body limit."""
    workdir = tmp_path_factory.mktemp("corpus-small")
    store = workdir / "store"
    register(store, "mlp", MODELS / "mlp_v1.onnx")
    config = workdir / "switchyard.toml"
    config.write_text(config_toml(store, [{"name": "mlp", "versions": [1]}], {"max_body_bytes": SMALL_MAX_BODY}))
    srv = start_server(config, store, workdir / "serve.log")
    try:
        yield srv
    finally:
        rc = stop_server(srv)
    assert rc == 0, f"serve exited {rc} after SIGTERM (expected 0):\n{srv.log_tail()}"


# --------------------------------------------------------------------------------------------
# Slowloris (first in the file, so that under xdist they start early and overlap the corpus)


def _closed(sock: socket.socket) -> bool:
    """True once the peer has closed (EOF or reset); drains and ignores any bytes it sent."""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _hold_open(srv: Server, openers: dict[str, bytes], trickle: dict[str, bytes], bound: float) -> dict[str, float]:
    """Opens one connection per `openers` entry and sends its bytes; connections named in
    `trickle` also send their trickle bytes once a second. Until all are closed or `bound` seconds
    pass, checks about every second that the server answers a valid request correctly. Returns
    the seconds after which each connection was closed (absent: still open)."""
    host, port = srv.host_port.rsplit(":", 1)
    socks = {}
    for name, first in openers.items():
        s = socket.create_connection((host, int(port)), timeout=5)
        if first:
            s.sendall(first)
        s.setblocking(False)
        socks[name] = s
    start = time.monotonic()
    closed: dict[str, float] = {}
    next_check = start
    try:
        with selectors.DefaultSelector() as sel:
            for name, s in socks.items():
                sel.register(s, selectors.EVENT_READ, name)
            while len(closed) < len(socks) and time.monotonic() - start < bound:
                for key, _ in sel.select(timeout=0.2):
                    if _closed(key.fileobj):
                        closed[key.data] = time.monotonic() - start
                        sel.unregister(key.fileobj)
                if time.monotonic() >= next_check:
                    next_check += 1.0
                    for name, extra in trickle.items():
                        if name not in closed:
                            try:
                                socks[name].send(extra)
                            except OSError:
                                closed[name] = time.monotonic() - start
                    assert_answers_valid(srv)  # the others are served meanwhile
    finally:
        for s in socks.values():
            s.close()
    return closed


def test_slowloris_unfinished_head_is_closed(server):
    """Request heads that never end (cut in the request line, cut in the headers, trickled one
    header a second) are closed by the header timeout; the server answers others meanwhile."""
    openers = {
        "partial_request_line": b"POST /v2/models/mlp/in",
        "partial_get_line": b"GET /v2/hea",
        "partial_headers": f"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: {server.host_port}\r\n".encode(),
        "trickled_headers": f"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: {server.host_port}\r\n".encode(),
    }
    closed = _hold_open(server, openers, {"trickled_headers": b"X-Slow: 1\r\n"}, HEADER_TIMEOUT_BOUND_S)
    still_open = sorted(set(openers) - set(closed))
    assert not still_open, f"still open after {HEADER_TIMEOUT_BOUND_S:.0f} s: {still_open} (closed: {closed})"
    assert server.alive()
    assert_answers_valid(server)


def test_slowloris_silent_connection_is_closed(server):
    openers = {"silent": b"", "one_byte_p": b"P", "partial_h2_preface": b"PRI * HTTP/2.0\r\n"}
    closed = _hold_open(server, openers, {}, HEADER_TIMEOUT_BOUND_S)
    assert server.alive()
    still_open = sorted(set(openers) - set(closed))
    assert not still_open, f"still open after {HEADER_TIMEOUT_BOUND_S:.0f} s: {still_open} (closed: {closed})"


# --------------------------------------------------------------------------------------------
# The corpus


def test_corpus_is_broad():
    """The corpus has at least 60 cases, and every status class the public port refuses with."""
    assert len(CASES) >= 60, len(CASES)
    statuses = {s for c in CASES for s in (c["status"] if isinstance(c["status"], list) else [c["status"]])}
    assert {400, 404, 405, 413, 415} <= statuses, statuses
    assert any(c.get("rss_guard") for c in CASES)
    assert any(c.get("server") == "small" and c.get("chunked") for c in CASES)


@pytest.mark.parametrize("case", list(case_params()))
def test_bad_request(case, request):
    srv: Server = request.getfixturevalue("small_server" if case.get("server") == "small" else "server")
    assert srv.alive(), f"server is not running before the case:\n{srv.log_tail()}"
    head, body = build_request(case, srv.host_port)
    peak_before = peak_rss_kib(srv.proc.pid) if case.get("rss_guard") else 0

    started = time.monotonic()
    status, headers, raw = send_raw(srv.host_port, case["method"], head + body)
    elapsed = time.monotonic() - started

    expected = case["status"] if isinstance(case["status"], list) else [case["status"]]
    shown = raw[:600].decode("utf-8", "replace")
    assert status in expected, f"expected {expected}, got {status}: {shown}"
    if not case.get("protocol_level"):
        assert headers.get("content-type", "").startswith("application/json"), (headers, shown)
        answer = json.loads(raw)
        assert isinstance(answer, dict) and set(answer) == {"error"}, answer
        message = answer["error"]
        assert isinstance(message, str) and message, answer
        assert re.search(case["message"], message), f"message {message!r} does not match {case['message']!r}"
    limit = case.get("max_seconds", DEFAULT_MAX_SECONDS)
    assert elapsed <= limit, f"answered after {elapsed:.2f} s (limit {limit} s)"
    if case.get("rss_guard"):
        growth = peak_rss_kib(srv.proc.pid) - peak_before
        assert growth <= RSS_GROWTH_LIMIT_KIB, f"peak RSS grew by {growth} KiB while refusing the request"

    assert srv.alive(), f"server exited after the case:\n{srv.log_tail()}"
    assert_answers_valid(srv)
