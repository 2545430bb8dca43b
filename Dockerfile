# Multi-stage build: the same commands as the README (`cargo build --release`, ONNX Runtime from
# the PyPI wheel via scripts/fetch-onnxruntime.sh).
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/fetch-onnxruntime.sh > /tmp/ort-path \
 && cargo build --release --locked -p gateway \
 && mkdir -p /out \
 && cp target/release/switchyard /out/ \
 && cp "$(cat /tmp/ort-path)" /out/libonnxruntime.so

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/switchyard switchyard && mkdir -p /var/lib/switchyard /etc/switchyard \
 && chown switchyard /var/lib/switchyard
# The library sits beside the binary, where switchyard looks for it.
COPY --from=build /out/switchyard /out/libonnxruntime.so /usr/local/bin/
COPY configs/example.toml /etc/switchyard/config.toml
USER switchyard
ENV SWITCHYARD__SERVER__LISTEN=0.0.0.0:8000 SWITCHYARD__STORE__PATH=/var/lib/switchyard
# 8081: gRPC, off unless enabled (e.g. -e SWITCHYARD__SERVER__GRPC_LISTEN=0.0.0.0:8081).
EXPOSE 8000 8001 8081
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve", "--config", "/etc/switchyard/config.toml"]
