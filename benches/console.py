#!/usr/bin/env python3
"""What an open operator console costs the request path (`make bench-console`): one gateway
serving the tiny model, measured with and without a headless Chromium showing the console's
models page (which polls the admin API every 2 s), alternating.

    python3 benches/console.py [--rounds 5] [--seconds 5] [--bin PATH]

The browser (Debian's Chromium through Selenium, as the console's test drives it; installed by
scripts/setup-browser.sh, Selenium from the test venv) is started once and stays open; "off"
points navigate it to about:blank, "on" points to the models page and wait for its first
render. wrk sends the JSON request at c=8; medians over rounds. The console reads what the
gateway keeps anyway (routing, the guard window's sub-windows), so the target is: no difference
beyond noise. The browser shares the machine's cores with wrk and the gateway, so what it costs
the machine shows too; the gateway's own CPU per request is reported apart.
Writes benches/results/console.md.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "console"

DRIVER = r"""
import sys, time
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
chromium, chromedriver = sys.argv[1], sys.argv[2]
options = webdriver.ChromeOptions()
options.binary_location = chromium
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
    options.add_argument(arg)
d = webdriver.Chrome(service=Service(chromedriver), options=options)
print("ready", flush=True)
for line in sys.stdin:
    url = line.strip()
    if not url:
        break
    d.get(url)
    if url != "about:blank":
        deadline = time.time() + 20
        while "Requests/s" not in d.page_source:
            if time.time() > deadline:
                print("error: the models page did not render", flush=True)
                break
            time.sleep(0.1)
    print("ok", flush=True)
d.quit()
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    args = ap.parse_args()
    binary, binary_desc, _, env = c.start_bench("console", args.bin, WORK)
    browser = subprocess.run([str(c.ROOT / "scripts" / "setup-browser.sh")], capture_output=True, text=True)
    m = re.search(r"chromium=(\S+) chromedriver=(\S+)", browser.stdout)
    if browser.returncode != 0 or not m:
        c.die(f"scripts/setup-browser.sh failed:\n{browser.stderr[-2000:]}")
    python = c.venv_python()

    store = c.register(binary, env, WORK / "store", [("mlp", "mlp_v1", 1), ("mlp", "mlp_v2", 2)])
    config = WORK / "console.toml"
    config.write_text(c.config_head("console.py", store, lineage=True)
                      + '\n[[model]]\nname = "mlp"\n[model.routing]\nchampion = 1\nchallengers = { 2 = 20 }\n')
    server = c.Server(binary, "console", config, WORK, env)
    server.check_infer("mlp")

    driver = subprocess.Popen([str(python), "-c", DRIVER, m.group(1), m.group(2)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)

    def show(url):
        driver.stdin.write(url + "\n")
        driver.stdin.flush()
        answer = driver.stdout.readline().strip()
        if answer != "ok":
            c.die(f"the browser: {answer or 'exited'}")

    if driver.stdout.readline().strip() != "ready":
        c.die("the browser did not start")
    results = {mode: [] for mode in ("off", "on")}
    started = c.machine()
    for r in range(args.rounds):
        for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
            show("about:blank" if mode == "off" else f"{server.admin}/ui#/models")
            cpu = server.cpu_seconds()
            got = c.run_wrk(f"{server.public}/v2/models/mlp/infer", 8, args.seconds, threads=2)
            cpu_us = (server.cpu_seconds() - cpu) / got["requests"] * 1e6
            results[mode].append((got["rps"], got["p50_us"], got["p99_us"], cpu_us))
            c.log(f"round {r + 1} console {mode}: {got['rps']:.0f}/s, p99 {got['p99_us']:.0f} us, {cpu_us:.1f} us CPU/request")
    driver.stdin.write("\n")  # an empty line closes the browser
    driver.stdin.flush()
    driver.wait(timeout=30)
    alive = server.alive()
    server.stop()
    if not alive:
        c.die("the server died during the run")
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(4)) for k, v in results.items()}
    lines = [
        "# What an open console costs (benches/console.py)",
        "",
        f"- binary: {binary_desc}",
        "- one gateway, the tiny `mlp` fixture with a challenger, lineage on; `on`: headless Chromium showing"
        " the console's models page (polling the admin API every 2 s); `off`: the same browser on about:blank",
        f"- wrk c=8, JSON body, {args.seconds} s per point; {args.rounds} rounds alternating (order swapped every"
        " round); medians",
        f"- machine: {started['nproc']} cores, {started['cpu']}, {started['mem']}; load average at start "
        f"{started['load_start']}; repository at {started['commit'][:10]}; wrk, the gateway and the browser share the cores",
        "",
        "| console | requests/s | p50 µs | p99 µs | gateway CPU µs/request |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in ("off", "on"):
        rps, p50, p99, cpu = med[mode]
        lines.append(f"| {mode} | {rps:.0f} | {p50:.0f} | {p99:.0f} | {cpu:.1f} |")
    on, off = med["on"], med["off"]
    # The machine drifts between rounds (shared cores): the ratio within each round, where on and
    # off ran back to back, is the fairer figure.
    paired = [a[0] / b[0] for a, b in zip(results["on"], results["off"])]
    paired_cpu = [a[3] - b[3] for a, b in zip(results["on"], results["off"])]
    lines += [
        "",
        f"- throughput on / off, medians of the points: {on[0] / off[0]:.3f}; median of the per-round ratios"
        f" (on and off back to back): {statistics.median(paired):.3f} (rounds: {', '.join(f'{x:.3f}' for x in paired)})",
        f"- gateway CPU per request on − off, median per round: {statistics.median(paired_cpu):+.1f} µs",
        "",
    ]
    text = "\n".join(lines)
    c.write_atomic(c.RESULTS / "console.md", text)
    print(text)


if __name__ == "__main__":
    main()
