#!/usr/bin/env python3
"""Two builds of Switchyard side by side on the tiny model (`make bench-ab`): did a change cost
throughput or latency?

    python3 benches/ab.py OLD_BINARY NEW_BINARY [--rounds 7] [--seconds 5] [--label TEXT]

Both servers run at once with the same config: the `mlp` fixture (v1 champion, v2 a 10 %
challenger, a sticky header the requests do not send), lineage on, metrics on. Each round runs
wrk against both, in an order that alternates round by round, at c=8 (throughput) and c=1
(latency); slow drifts of a shared machine then fall on both alike. Reported: each build's medians,
the new/old ratio of the medians and the median of the per-round ratios. Writes
benches/results/ab.md (the binaries' sha256 and the machine are in it).
"""

import argparse
import hashlib
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "ab"
CONFIG_MODEL = """
[[model]]
name = "mlp"
versions = [1, 2]
[model.routing]
champion = 1
challengers = { 2 = 10 }
sticky_header = "x-user-id"
"""


def start(binary, name, env):
    store = WORK / f"store-{name}"
    c.fresh_dir(store)
    c.register(binary, env, store, [("mlp", "mlp_v1", 1), ("mlp", "mlp_v2", 2)])
    config = WORK / f"{name}.toml"
    config.write_text(c.config_head("ab.py", store, lineage=True) + CONFIG_MODEL)
    server = c.Server(binary, name, config, WORK, env)
    server.check_infer("mlp")
    return server


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    c.set_tag("ab")
    c.install_exit_handlers()
    c.ensure_wrk()
    c.fresh_dir(WORK)
    ort = c.onnxruntime()
    env = c.server_env(ort)
    builds = {}
    for name, path in (("old", args.old), ("new", args.new)):
        binary = WORK / f"switchyard-{name}"
        binary.write_bytes(Path(path).read_bytes())
        binary.chmod(0o755)
        builds[name] = {"binary": binary, "sha": digest(binary), "rps8": [], "p50_1": [], "p99_8": []}
    servers = {name: start(b["binary"], name, env) for name, b in builds.items()}
    started = c.machine()
    for r in range(args.rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for name in order:
            url = f"{servers[name].public}/v2/models/mlp/infer"
            hi = c.run_wrk(url, 8, args.seconds)
            lo = c.run_wrk(url, 1, args.seconds, threads=1)
            builds[name]["rps8"].append(hi["rps"])
            builds[name]["p99_8"].append(hi["p99_us"])
            builds[name]["p50_1"].append(lo["p50_us"])
            c.log(f"round {r + 1} {name}: c=8 {hi['rps']:.0f} req/s (p99 {hi['p99_us']:.0f} us), "
                  f"c=1 p50 {lo['p50_us']:.0f} us")
    for s in servers.values():
        s.stop()
    med = {n: {k: statistics.median(v) for k, v in b.items() if isinstance(v, list)} for n, b in builds.items()}
    per_round = lambda k: statistics.median(n / o for n, o in zip(builds["new"][k], builds["old"][k]))  # noqa: E731
    lines = [
        "# Two builds side by side (benches/ab.py)",
        "",
        f"{args.label}".strip(),
        "",
        f"- old: sha256 {builds['old']['sha']}…; new: sha256 {builds['new']['sha']}…",
        f"- {args.rounds} rounds of {args.seconds} s per point, order alternating; both servers up at once;"
        " `mlp` v1 champion + v2 10 % challenger, sticky header configured, lineage on",
        f"- machine: {started['nproc']} cores, {started['cpu']}, {started['mem']}; load average at start "
        f"{started['load_start']}; {started['wrk']}; repository at {started['commit'][:10]}",
        "",
        "| | old | new | new/old (medians) | median of per-round new/old |",
        "|---|---:|---:|---:|---:|",
        f"| req/s at c=8 | {med['old']['rps8']:.0f} | {med['new']['rps8']:.0f} | "
        f"{med['new']['rps8'] / med['old']['rps8']:.3f} | {per_round('rps8'):.3f} |",
        f"| p99 at c=8 (µs) | {med['old']['p99_8']:.0f} | {med['new']['p99_8']:.0f} | "
        f"{med['new']['p99_8'] / med['old']['p99_8']:.3f} | {per_round('p99_8'):.3f} |",
        f"| p50 at c=1 (µs) | {med['old']['p50_1']:.0f} | {med['new']['p50_1']:.0f} | "
        f"{med['new']['p50_1'] / med['old']['p50_1']:.3f} | {per_round('p50_1'):.3f} |",
        "",
        "Per round (req/s at c=8, old / new): "
        + ", ".join(f"{o:.0f} / {n:.0f}" for o, n in zip(builds["old"]["rps8"], builds["new"]["rps8"])),
        "",
    ]
    text = "\n".join(lines)
    c.write_atomic(c.RESULTS / "ab.md", text)
    print(text)


if __name__ == "__main__":
    main()
