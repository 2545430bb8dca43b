# The two commands: `make run` serves the example models; `make test` runs the whole suite.
# Both set up what they need (ONNX Runtime, Python tools) into .cache/, idempotently.

.PHONY: run test setup build lint fmt clean-cache bench-lineage

run:
	scripts/run-example.sh

test:
	scripts/test.sh

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

clean-cache:
	rm -rf .cache
