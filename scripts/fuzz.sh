#!/usr/bin/env bash
# Fuzzes the v2 request decoder and the config parser (the cargo-fuzz crate in fuzz/) on stable
# Rust, each for FUZZ_SECONDS (default 60). Exits non-zero if a target panics, printing the
# saved crashing input. Idempotent: installs cargo-fuzz into .cache/cargo-fuzz on first use.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=10 scripts/fuzz.sh      # shorter
#   scripts/fuzz.sh v2_decode            # some targets only
#   FUZZ_JOBS=2 scripts/fuzz.sh          # libFuzzer -fork=N processes per target (default 1)
#   FUZZ_ARGS="-max_len=65536" scripts/fuzz.sh   # extra libFuzzer flags
#
# Stable Rust: cargo-fuzz adds -Zsanitizer=… only when a sanitizer is asked for, so
# `--sanitizer none` builds on stable with no RUSTC_BOOTSTRAP (the coverage instrumentation it
# uses, -Cpasses=sancov-module and -Cllvm-args=-sanitizer-coverage-*, are stable flags). Safe
# Rust needs no AddressSanitizer to find panics. The build keeps debug assertions (overflow
# checks included) on, as `cargo fuzz build` does without -O.
#
# The committed seeds in fuzz/corpus/<target>/ are never written to: libFuzzer adds the inputs
# it finds to its first corpus directory, which here is a scratch copy under fuzz/target/.
# A crash is saved under fuzz/artifacts/<target>/ (git-ignored); reproduce it with
#   fuzz/target/<host triple>/release/<target> <file>      (or: cargo fuzz run -s none <target> <file>)
# and keep it as a regression input under fuzz/regressions/<target>/ (read on every run).
#
# The gateway links ONNX Runtime with load-dynamic: the decoder and the config parser never
# load it, so no ORT_DYLIB_PATH is needed (and it is unset here to keep it that way).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-1}"
cargo_fuzz_version="0.13.2"
cargo_fuzz="$root/.cache/cargo-fuzz/bin/cargo-fuzz"
all_targets=(v2_decode config_parse)
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi

if ! [ -x "$cargo_fuzz" ] || ! "$cargo_fuzz" --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  echo "== installing cargo-fuzz $cargo_fuzz_version into .cache/cargo-fuzz (once; a few minutes)"
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" --root "$root/.cache/cargo-fuzz"
fi

# Environment the targets read or that would make runs differ from one machine to the next.
unset ORT_DYLIB_PATH SWITCHYARD_ADMIN_TOKEN

echo "== building fuzz targets (stable, --sanitizer none)"
"$cargo_fuzz" build --sanitizer none

triple="$(rustc -vV | sed -n 's/^host: //p')"
status=0
for target in "${targets[@]}"; do
  seeds="$root/fuzz/corpus/$target"
  bin="$root/fuzz/target/$triple/release/$target"
  if ! [ -d "$seeds" ] || ! [ -x "$bin" ]; then
    echo "unknown fuzz target '$target' (have: ${all_targets[*]})" >&2
    exit 2
  fi
  work="$root/fuzz/target/corpus-work/$target"
  artifacts="$root/fuzz/artifacts/$target"
  rm -rf "$work"
  mkdir -p "$work" "$artifacts"
  extra=()
  # Regression inputs, if any, are read with the seeds: a fixed crash must stay fixed.
  if [ -d "$root/fuzz/regressions/$target" ]; then
    extra+=("$root/fuzz/regressions/$target")
  fi
  if [ -f "$root/fuzz/dict/$target.dict" ]; then
    args=(-dict="$root/fuzz/dict/$target.dict")
  else
    args=()
  fi
  if [ "$jobs" -gt 1 ]; then
    args+=(-fork="$jobs")
  fi
  # shellcheck disable=SC2206 # FUZZ_ARGS is split on spaces on purpose
  args+=(${FUZZ_ARGS:-})
  log="$root/fuzz/target/fuzz-$target.log"
  echo "== fuzzing $target for ${seconds}s (log: ${log#"$root"/})"
  before="$(find "$artifacts" -type f | sort)"
  # The binary is run directly, not through `cargo fuzz run`, which would rebuild first (the
  # gateway sources may have changed since the build above). libFuzzer writes new inputs into
  # its first corpus dir only (the scratch one); the seeds and regressions are only read.
  set +e
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${args[@]}" "$work" "$seeds" "${extra[@]}" >"$log" 2>&1
  rc=$?
  set -e
  new="$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | sed '/^$/d')"
  if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
    status=1
    echo "!! $target FAILED (exit $rc); log: $log" >&2
    grep -E "panicked at|^ERROR: libFuzzer|^SUMMARY|Test unit written" "$log" | tail -n 20 >&2 || tail -n 30 "$log" >&2
    for f in $new; do
      echo "!! crashing input: $f" >&2
      echo "!! reproduce:      $bin $f" >&2
    done
  else
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$log" | sed "s/^/   $target: /" || true
    echo "   $target: no crash ($(find "$work" -type f | wc -l) new corpus inputs, kept in ${work#"$root"/})"
  fi
done
exit "$status"
