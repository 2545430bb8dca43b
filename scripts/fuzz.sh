#!/usr/bin/env bash
# Fuzzes the v2 request decoder, the config parser, the JSON tensor data reader and the gRPC
# request conversion (the cargo-fuzz crate in fuzz/) on stable Rust, each for FUZZ_SECONDS
# (default 60), the targets side by side. Exits non-zero if a target panics, times out or runs
# out of memory, printing the saved input and the command that reproduces it. `make test` runs
# it last; `make fuzz` runs it alone. Idempotent.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=10 scripts/fuzz.sh      # shorter
#   scripts/fuzz.sh v2_decode            # some targets only
#   FUZZ_PROFILE=release scripts/fuzz.sh # optimised build, for long runs (see below)
#   FUZZ_JOBS=2 scripts/fuzz.sh          # libFuzzer -fork=N processes per target (default 1)
#   FUZZ_ARGS="-max_len=65536" scripts/fuzz.sh   # extra libFuzzer flags
#
# Build: plain `cargo build` with the flags `cargo fuzz build --sanitizer none` passes (cargo-fuzz
# 0.13), so cargo-fuzz need not be installed. They are all stable (cargo-fuzz adds -Z flags only
# for a sanitizer; safe Rust needs none to find panics), so no nightly and no RUSTC_BOOTSTRAP.
# `--target <host>` keeps RUSTFLAGS off build scripts and proc macros, as cargo-fuzz does.
# Debug assertions (overflow checks included) are on in every profile.
#   FUZZ_PROFILE=quick (default): fuzz/Cargo.toml's `quick` profile, opt-level 0 but for the
#     crates the targets run in; about half the CPU time of the release build from cold.
#   FUZZ_PROFILE=release: cargo-fuzz's build (release, -Ccodegen-units=1), 2-3 times the
#     executions per second.
# Output: fuzz/target/<host triple>/<profile>/<target>.
#
# The committed seeds in fuzz/corpus/<target>/ are never written to: libFuzzer adds the inputs
# it finds to its first corpus directory, which here is a scratch one under fuzz/target/.
# A crash is saved under fuzz/artifacts/<target>/ (git-ignored); reproduce it with the binary
# the failure message names (or: cargo fuzz run -s none <target> <file>), and keep it as a
# regression input under fuzz/regressions/<target>/ (replayed on every run).
#
# The targets link the `protocol` and `settings` crates only (no ONNX Runtime, tokio, hyper or
# sqlx), so no ORT_DYLIB_PATH is needed (and it is unset here to keep it that way).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-1}"
profile="${FUZZ_PROFILE:-quick}"
all_targets=(v2_decode config_parse json_data grpc_decode)
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi
for target in "${targets[@]}"; do
  if ! [ -f "$root/fuzz/fuzz_targets/$target.rs" ] || ! [ -d "$root/fuzz/corpus/$target" ]; then
    echo "unknown fuzz target '$target' (have: ${all_targets[*]})" >&2
    exit 2
  fi
done

# Environment the targets read or that would make runs differ from one machine to the next.
# CARGO_ENCODED_RUSTFLAGS would override the RUSTFLAGS set below.
unset ORT_DYLIB_PATH SWITCHYARD_ADMIN_TOKEN CARGO_ENCODED_RUSTFLAGS

triple="$(rustc -vV | sed -n 's/^host: //p')"
# cargo-fuzz 0.13.2's flags for `--sanitizer none`, in its order (src/project.rs).
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
flags+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
case "$triple" in *-linux-*) flags+=" -Cllvm-args=-sanitizer-coverage-stack-depth" ;; esac
flags+=" -Cdebug-assertions"
# In release mode cargo-fuzz builds one codegen unit per crate: with the coverage pass on, inlining
# across units would otherwise stop (slow to build, much faster to run).
if [ "$profile" = release ]; then
  flags+=" -Ccodegen-units=1"
fi
case "$profile" in
  dev) profile_dir=debug ;;
  *) profile_dir="$profile" ;;
esac

bin_args=()
for target in "${targets[@]}"; do
  bin_args+=(--bin "$target")
done
echo "== building fuzz targets (profile $profile, stable, coverage-instrumented)"
# --locked: fuzz/Cargo.lock keeps the versions of the root Cargo.lock (see fuzz/README.md).
if ! RUSTFLAGS="$flags${RUSTFLAGS:+ $RUSTFLAGS}" cargo build --locked \
  --manifest-path "$root/fuzz/Cargo.toml" --target "$triple" --target-dir "$root/fuzz/target" \
  --profile "$profile" "${bin_args[@]}"; then
  echo "!! building the fuzz targets failed. If cargo cannot update fuzz/Cargo.lock, the" >&2
  echo "!! gateway's dependencies changed: see \"Cargo.lock\" in fuzz/README.md." >&2
  exit 1
fi

args_common=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
if [ "$jobs" -gt 1 ]; then
  args_common+=(-fork="$jobs")
fi
# shellcheck disable=SC2206 # FUZZ_ARGS is split on spaces on purpose
args_common+=(${FUZZ_ARGS:-})

# Start every target, then wait for them all: one process each (FUZZ_JOBS more), so the targets
# take the wall time of one (on two cores, each gets two thirds of a core).
declare -A pid before
for target in "${targets[@]}"; do
  bin="$root/fuzz/target/$triple/$profile_dir/$target"
  work="$root/fuzz/target/corpus-work/$target"
  artifacts="$root/fuzz/artifacts/$target"
  rm -rf "$work"
  mkdir -p "$work" "$artifacts"
  args=("${args_common[@]}" -artifact_prefix="$artifacts/")
  if [ -f "$root/fuzz/dict/$target.dict" ]; then
    args+=(-dict="$root/fuzz/dict/$target.dict")
  fi
  corpora=("$work" "$root/fuzz/corpus/$target")
  # Regression inputs, if any, are read with the seeds: a fixed crash must stay fixed.
  if [ -d "$root/fuzz/regressions/$target" ]; then
    corpora+=("$root/fuzz/regressions/$target")
  fi
  before[$target]="$(find "$artifacts" -type f | sort)"
  echo "== fuzzing $target for ${seconds}s (log: fuzz/target/fuzz-$target.log)"
  # libFuzzer writes new inputs into its first corpus dir only (the scratch one); the seeds and
  # regressions are only read.
  "$bin" "${args[@]}" "${corpora[@]}" >"$root/fuzz/target/fuzz-$target.log" 2>&1 &
  pid[$target]=$!
done
# Interrupted (Ctrl-C, CI timeout): stop the fuzzers too.
trap 'kill "${pid[@]}" 2>/dev/null; exit 130' INT TERM

status=0
for target in "${targets[@]}"; do
  rc=0
  wait "${pid[$target]}" || rc=$?
  bin="$root/fuzz/target/$triple/$profile_dir/$target"
  log="$root/fuzz/target/fuzz-$target.log"
  work="$root/fuzz/target/corpus-work/$target"
  artifacts="$root/fuzz/artifacts/$target"
  new="$(comm -13 <(echo "${before[$target]}") <(find "$artifacts" -type f | sort) | sed '/^$/d')"
  if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
    status=1
    # libFuzzer's exit codes (its defaults).
    case "$rc" in
      77) what="crash (panic)" ;;
      70) what="timeout (one input ran over 10 s)" ;;
      71) what="out of memory" ;;
      72) what="interrupted" ;;
      *) what="failure" ;;
    esac
    echo "!! $target FAILED: $what, exit $rc; log: ${log#"$root"/}" >&2
    if ! grep -A1 -E "panicked at|^==[0-9]+== ERROR: libFuzzer|^SUMMARY" "$log" | grep -v '^--$' >&2; then
      tail -n 30 "$log" >&2
    fi
    while IFS= read -r f; do
      [ -n "$f" ] || continue
      echo "!! input:     ${f#"$root"/}" >&2
      echo "!! reproduce: ${bin#"$root"/} ${f#"$root"/}   (from the repository root)" >&2
    done <<<"$new"
  else
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
    echo "   $target: no crash in ${runs:-?} runs (${rate:-?}/s); $(find "$work" -type f | wc -l) new corpus inputs in ${work#"$root"/}"
  fi
done
exit "$status"
