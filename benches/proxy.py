#!/usr/bin/env python3
"""The gateway as a reverse proxy (`make bench-proxy`, part of `make bench`): what a remote
version's hop costs over calling its upstream directly.

    python3 benches/proxy.py [--rounds 5] [--seconds 3] [--bin PATH]

Two processes of the same release build: the upstream serves the tiny `mlp` fixture (lineage
off: it stands for a model server a team already runs); the gateway serves `mlp` as a remote
version of it (lineage on, as deployed). wrk sends the same JSON request to each at c=1 and c=8,
the two alternating within every round (direct first on even rounds, the gateway first on odd);
medians over rounds. Reported: throughput, p50 and p99 of each, the latency the hop adds (gateway
minus direct), and the gateway's own CPU per request (its /proc utime + stime over the requests
it answered). Writes benches/results/proxy.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "proxy"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    args = ap.parse_args()
    binary, binary_desc, ort, env = c.start_bench("proxy", args.bin, WORK)

    upstream_store = c.register(binary, env, WORK / "upstream-store", [("mlp", "mlp_v1", 1)])
    up_config = WORK / "upstream.toml"
    up_config.write_text(c.config_head("proxy.py", upstream_store, lineage=False)
                         + '\n[[model]]\nname = "mlp"\nversions = [1]\n')
    upstream = c.Server(binary, "upstream", up_config, WORK, env)
    upstream.check_infer("mlp")

    store = WORK / "store"
    out = subprocess.run([str(binary), "models", "register", "--store", str(store), "--model", "mlp",
                          "--upstream", upstream.public, "--json"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        c.die(f"models register --upstream failed:\n{out.stderr}")
    remote = json.loads(out.stdout)
    out = subprocess.run([str(binary), "models", "register", "--store", str(store), "--model", "mlp",
                          "--upstream", upstream.public, "--upstream-binary", "--json"],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        c.die(f"models register --upstream --upstream-binary failed:\n{out.stderr}")
    remote_binary = json.loads(out.stdout)
    gw_config = WORK / "gateway.toml"
    gw_config.write_text(c.config_head("proxy.py", store, lineage=True)
                         + f'\n[[model]]\nname = "mlp"\nversions = [{remote["version"]}, {remote_binary["version"]}]\n')
    gateway = c.Server(binary, "gateway", gw_config, WORK, env)
    gateway.check_infer("mlp", expect_version=remote["version"])
    # The gateway's paths: pinned to the JSON remote version, and to the binary one.
    paths = {"gateway": f"/v2/models/mlp/versions/{remote['version']}/infer",
             "gateway, binary upstream": f"/v2/models/mlp/versions/{remote_binary['version']}/infer"}
    whos = ("direct", "gateway", "gateway, binary upstream")

    points = (1, 8)
    results = {(n, who): [] for n in points for who in whos}
    cpu_per_request = {(n, who): [] for n in points for who in whos[1:]}
    started = c.machine()
    for r in range(args.rounds):
        for n in points:
            order = whos[r % 3:] + whos[:r % 3]
            for who in order:
                url = f"{upstream.public}/v2/models/mlp/infer" if who == "direct" else f"{gateway.public}{paths[who]}"
                cpu_before = gateway.cpu_seconds()
                got = c.run_wrk(url, n, args.seconds, threads=1 if n == 1 else 2)
                if who != "direct" and got["requests"]:
                    cpu_per_request[(n, who)].append((gateway.cpu_seconds() - cpu_before) / got["requests"] * 1e6)
                results[(n, who)].append((got["rps"], got["p50_us"], got["p99_us"]))
                c.log(f"round {r + 1} c={n} {who}: {got['rps']:.0f}/s, p50 {got['p50_us']:.0f} us, "
                      f"p99 {got['p99_us']:.0f} us")
    alive = upstream.alive() and gateway.alive()
    gateway.stop()
    upstream.stop()
    if not alive:
        c.die("a server died during the run")
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in results.items()}

    lines = [
        "# The gateway as a reverse proxy (benches/proxy.py)",
        "",
        f"- binary: {binary_desc}",
        "- upstream: a Switchyard serving the tiny `mlp` fixture (input [1,64] FP32, lineage off);"
        " gateway: the same build serving it as two remote versions (lineage on, HTTP/1.1 keep-alive pool):"
        " JSON to the upstream, and binary tensors (`--upstream-binary`); the client sends JSON to all",
        f"- wrk, JSON body, {args.seconds} s per point; {args.rounds} rounds, the three paths in an order"
        " rotating every round; medians",
        f"- machine: {started['nproc']} cores, {started['cpu']}, {started['mem']}; load average at start "
        f"{started['load_start']}; repository at {started['commit'][:10]}; wrk, gateway and upstream share the cores",
        "",
        "| c | path | requests/s | p50 µs | p99 µs |",
        "|---:|---|---:|---:|---:|",
    ]
    for n in points:
        for who in whos:
            rps, p50, p99 = med[(n, who)]
            lines.append(f"| {n} | {who} | {rps:.0f} | {p50:.0f} | {p99:.0f} |")
    lines += ["", "| c | path | added p50 µs | added p99 µs | gateway CPU µs per request | throughput gateway / direct |",
              "|---:|---|---:|---:|---:|---:|"]
    for n in points:
        d = med[(n, "direct")]
        for who in whos[1:]:
            g = med[(n, who)]
            cpu = statistics.median(cpu_per_request[(n, who)]) if cpu_per_request[(n, who)] else float("nan")
            lines.append(f"| {n} | {who} | {g[1] - d[1]:.0f} | {g[2] - d[2]:.0f} | {cpu:.0f} | {g[0] / d[0]:.2f} |")
    lines += [
        "",
        "Yardstick: Envoy-class proxies add tens of microseconds per hop at p50. The gateway's hop"
        " decodes the client's request (validation, routing, lineage need its tensors), encodes a"
        " JSON request to the upstream and decodes its answer: see the numbers above for what that"
        " costs here.",
        "",
    ]
    text = "\n".join(lines)
    c.write_atomic(c.RESULTS / "proxy.md", text)
    print(text)


if __name__ == "__main__":
    main()
