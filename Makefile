# The two commands: `make run` serves the example models; `make test` runs the whole suite.
# Both set up what they need (ONNX Runtime, Python tools) into .cache/, idempotently.

.PHONY: run test fuzz setup build lint fmt clean-cache bench-lineage bench bench-micro bench-reload bench-overload bench-soak bench-ab bench-protocols bench-proxy bench-monitoring bench-lineage-ack bench-console bench-jobs bench-minimal

run:
	scripts/run-example.sh

test:
	scripts/test.sh

# The fuzz step of `make test` alone: both fuzz targets, FUZZ_SECONDS (default 60) each, side by
# side. FUZZ_PROFILE=release for the optimised build (long runs); see fuzz/README.md.
fuzz:
	scripts/fuzz.sh

setup:
	scripts/fetch-onnxruntime.sh
	scripts/setup-python.sh
	@[ ! -x scripts/setup-perf-analyzer.sh ] || scripts/setup-perf-analyzer.sh

build:
	cargo build --release --locked -p gateway

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# Lineage ON/OFF throughput and 10% shadow vs none latency on the mlp fixture (about 4 minutes
# after the build; not part of CI). Writes benches/results/lineage.md; see benches/README.md.
bench-lineage:
	python3 benches/lineage_shadow.py

# Side by side, one run (not part of CI): Switchyard against in-process ONNX Runtime (compute
# limit), a bare hyper server (HTTP limit), MLServer, KServe and Triton (via nvidia-pytriton) on
# three models, with wrk and perf_analyzer. About 10 minutes once set up; the first run also builds
# benches/rust, generates the models and installs the peers' venvs (benches/.cache/, ~20-30 min).
# BENCH_QUICK=1 for a smoke run. Writes benches/results/side_by_side.md and .svg; see benches/README.md.
# Then gRPC beside REST (bench-protocols) and the reverse-proxy hop (bench-proxy).
bench:
	python3 benches/side_by_side.py
	python3 benches/protocols.py
	python3 benches/proxy.py

# gRPC (raw tensors) beside REST (binary and JSON tensors) on one gateway: the tiny model at c=1 and
# c=8, a 1 MiB FP32 input at c=2 (about 3 minutes after the build; not part of CI). Writes
# benches/results/protocols.md; see benches/protocols.py.
bench-protocols:
	python3 benches/protocols.py

# Two builds side by side on the tiny model (not part of CI): OLD=path/to/switchyard NEW=path/to/switchyard,
# alternating rounds, medians. Writes benches/results/ab.md; see benches/ab.py.
bench-ab:
	python3 benches/ab.py "$(OLD)" "$(NEW)"

# The gateway as a reverse proxy: a remote version's hop (added p50/p99 latency, CPU per request)
# over calling its upstream directly, side by side (about 2 minutes after the build). Writes
# benches/results/proxy.md; see benches/proxy.py.
bench-proxy:
	python3 benches/proxy.py

# What drift profiling and per-slice figures cost on the tiny model, side by side with neither
# (about 2 minutes after the build). Writes benches/results/monitoring.md; see benches/monitoring.py.
bench-monitoring:
	python3 benches/monitoring.py

# What [lineage] ack = "after_commit" costs against the default, side by side (about 2 minutes
# after the build). Writes benches/results/lineage_ack.md; see benches/lineage_ack.py.
bench-lineage-ack:
	python3 benches/lineage_ack.py

# What an open operator console (headless Chromium polling the models page) costs the request
# path, alternating with the browser on about:blank (about 2 minutes after the build). Writes
# benches/results/console.md; see benches/console.py.
bench-console:
	python3 benches/console.py

# Online latency of a steady load while the gateway runs a prediction job (POST /admin/jobs)
# beside it, alternating with none (about 3 minutes after the build). Writes
# benches/results/jobs.md; see benches/jobs.py.
bench-jobs:
	python3 benches/jobs.py

# Switchyard (challenger, sticky header, lineage, metrics scraped) against a minimal hyper +
# serde_json + inline ONNX Runtime server, side by side: what the features cost per request
# (about 3 minutes after the builds). Writes benches/results/minimal.md; see benches/minimal.py.
bench-minimal:
	python3 benches/minimal.py

# Criterion micro-benchmarks of the request path's pure parts (routing, v2 decode/encode, lineage
# record), each beside a baseline; benches/results/micro.md holds the latest figures.
bench-micro:
	cargo bench --locked -p gateway --bench micro -- --warm-up-time 1 --measurement-time 4 --noplot
	cargo bench --locked -p model-store --bench append -- --noplot

# p99 of the serving versions during a reload storm (a reload every 0.5 s) vs steady state (about
# 2 minutes after the build). Writes benches/results/reload.md; see benches/README.md.
bench-reload:
	python3 benches/reload_storm.py

# Capacity of the `slow` fixture, then 3x that offered open loop: 503 share, Retry-After, latency of
# what is accepted, health afterwards (about 3 minutes). Writes benches/results/overload.md.
bench-overload:
	python3 benches/overload.py

# 10 minutes (SOAK_SECONDS) of steady load with a reload every 30 s: errors and the RSS slope.
# Writes benches/results/soak.md and soak-rss.svg.
bench-soak:
	python3 benches/soak.py

clean-cache:
	rm -rf .cache
