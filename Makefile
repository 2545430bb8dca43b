# The two commands: `make run` serves the example models; `make test` runs the whole suite.
# Both set up what they need (ONNX Runtime, Python tools) into .cache/, idempotently.

.PHONY: run test setup build lint fmt clean-cache

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

clean-cache:
	rm -rf .cache
