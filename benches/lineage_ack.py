#!/usr/bin/env python3
"""What `[lineage] ack = "after_commit"` costs (`make bench-lineage-ack`): the tiny model served
twice by the same release build, side by side, lineage on in both.

    python3 benches/lineage_ack.py [--rounds 5] [--seconds 3] [--bin PATH]

- `submit` (the default): an answer leaves once its record is in the writer's channel.
- `after_commit`: an answer leaves once its record is committed (fsync'd: `durability = "full"`),
  the writer committing at once while answers wait (group commit).

wrk sends the same JSON request to both at c=1, c=8 and c=32 (more clients waiting per commit:
larger groups); the two alternate within every round (order swapped each round); medians over
rounds. Writes benches/results/lineage_ack.md.
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "lineage_ack"
MODES = ("submit", "after_commit")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    args = ap.parse_args()
    binary, binary_desc, _, env = c.start_bench("lineage_ack", args.bin, WORK)
    servers = {}
    for mode in MODES:
        store = c.register(binary, env, WORK / f"store-{mode}", [("mlp", "mlp_v1", 1)])
        config = WORK / f"{mode}.toml"
        config.write_text(c.config_head("lineage_ack.py", store, lineage=True) + f'ack = "{mode}"\n'
                          + '\n[[model]]\nname = "mlp"\nversions = [1]\n')
        servers[mode] = c.Server(binary, mode, config, WORK, env)
        servers[mode].check_infer("mlp")

    points = (1, 8, 32)
    results = {(n, mode): [] for n in points for mode in MODES}
    started = c.machine()
    for r in range(args.rounds):
        for n in points:
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                got = c.run_wrk(f"{servers[mode].public}/v2/models/mlp/infer", n, args.seconds,
                                threads=1 if n == 1 else 2)
                results[(n, mode)].append((got["rps"], got["p50_us"], got["p99_us"]))
                c.log(f"round {r + 1} c={n} {mode}: {got['rps']:.0f}/s, p50 {got['p50_us']:.0f} us")
    alive = all(s.alive() for s in servers.values())
    for s in servers.values():
        s.stop()
    if not alive:
        c.die("a server died during the run")
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in results.items()}
    lines = [
        "# What `[lineage] ack = \"after_commit\"` costs (benches/lineage_ack.py)",
        "",
        f"- binary: {binary_desc}",
        "- the tiny `mlp` fixture, lineage on (`durability = \"full\"`: every commit fsync'd), two servers"
        " differing only in `ack`",
        f"- wrk, JSON body, {args.seconds} s per point; {args.rounds} rounds, the two alternating (order swapped"
        " every round); medians",
        f"- machine: {started['nproc']} cores, {started['cpu']}, {started['mem']}; load average at start "
        f"{started['load_start']}; repository at {started['commit'][:10]}; wrk and both servers share the cores",
        "",
        "| c | ack | requests/s | p50 µs | p99 µs |",
        "|---:|---|---:|---:|---:|",
    ]
    for n in points:
        for mode in MODES:
            rps, p50, p99 = med[(n, mode)]
            lines.append(f"| {n} | {mode} | {rps:.0f} | {p50:.0f} | {p99:.0f} |")
    lines.append("")
    for n in points:
        a, b = med[(n, "submit")], med[(n, "after_commit")]
        lines.append(f"- c={n}: after_commit / submit throughput {b[0] / a[0]:.2f}, p50 +{b[1] - a[1]:.0f} µs")
    lines.append("")
    text = "\n".join(lines)
    c.write_atomic(c.RESULTS / "lineage_ack.md", text)
    print(text)


if __name__ == "__main__":
    main()
