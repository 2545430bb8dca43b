#!/usr/bin/env bash
# Makes sure a real Prometheus server and promtool are installed for the end-to-end metrics test
# (tests/python/test_prometheus.py): promtool lints the gateway's /metrics output, and a
# Prometheus started by the test scrapes a gateway and answers PromQL queries over what it saw.
#
# Where they come from: Debian's `prometheus` package (2.42 on bookworm), which puts both at
# /usr/bin/prometheus and /usr/bin/promtool. Installing it needs root (as on CI). Idempotent: with
# the package in place this only checks that both binaries run.
#
# The package's postinst starts a system service (init script or systemd unit; it listens on
# :9090 on every interface). The test starts its own Prometheus, on loopback only, so while
# installing this script puts a /usr/sbin/policy-rc.d that denies service starts (the standard
# Debian mechanism; container images usually ship one already), and stops and disables the
# service afterwards should it have been started anyway.
#
# Prints one line on stdout, for the test to parse:
#   prometheus=/usr/bin/prometheus promtool=/usr/bin/promtool
# Everything else goes to stderr.
set -euo pipefail
prometheus=/usr/bin/prometheus
promtool=/usr/bin/promtool
policy=/usr/sbin/policy-rc.d

installed() {
  [ "$(dpkg-query -W -f='${Status}' prometheus 2>/dev/null || true)" = "install ok installed" ] \
    && [ -x "$prometheus" ] && [ -x "$promtool" ]
}

# Pids of the package's service: $prometheus running as the package's system user. (The test
# runs its own Prometheus as the invoking user, so it never matches.)
service_pids() {
  local uid dir pid
  uid="$(id -u prometheus 2>/dev/null)" || return 0
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = "$prometheus" ] \
      && [ "$(stat -c %u "/proc/$pid" 2>/dev/null || true)" = "$uid" ]; then
      echo "$pid"
    fi
  done
}

# Stops the package's service and keeps it from starting at boot.
stop_service() {
  local pids pid i
  if [ -d /run/systemd/system ] && command -v systemctl > /dev/null; then
    systemctl disable --now prometheus.service >&2 || true
  elif [ -x /etc/init.d/prometheus ]; then
    update-rc.d prometheus disable >&2 || true
    [ -z "$(service_pids)" ] || /etc/init.d/prometheus stop >&2 || true
  fi
  # The init script finds the daemon by its pidfile, which a failed restart can leave behind
  # missing: signal what is left by pid.
  pids="$(service_pids)"
  [ -n "$pids" ] || return 0
  echo "stopping the prometheus service the package started (pids: $(echo $pids))" >&2
  for pid in $pids; do kill -TERM "$pid" 2> /dev/null || true; done
  for i in $(seq 100); do
    [ -n "$(service_pids)" ] || return 0
    sleep 0.1
  done
  for pid in $(service_pids); do kill -KILL "$pid" 2> /dev/null || true; done
  sleep 0.5
  if [ -n "$(service_pids)" ]; then
    echo "error: the prometheus service is still running (pids: $(echo $(service_pids)))" >&2
    exit 1
  fi
}

if ! installed; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: the prometheus package is not installed, and installing it needs root:" \
      "run this script as root, or \`apt-get install prometheus\`" >&2
    exit 1
  fi
  # Parallel test workers may each run this: one installs, the others wait here, then find it
  # installed.
  exec 9> "${TMPDIR:-/tmp}/switchyard-setup-prometheus.lock"
  flock 9
fi
if ! installed; then
  # 1. Keep the postinst from starting the system service: a policy-rc.d that denies every start
  # (exit 101), in place of any that would allow it (restored on exit).
  if [ ! -x "$policy" ] || { "$policy" prometheus start > /dev/null 2>&1; [ $? -ne 101 ]; }; then
    backup=""
    if [ -e "$policy" ]; then
      backup="$(mktemp)"
      cp -p "$policy" "$backup"
    fi
    restore_policy() {
      if [ -n "$backup" ]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\n# Temporary, from scripts/setup-prometheus.sh: no service starts.\nexit 101\n' > "$policy.tmp"
    chmod 0755 "$policy.tmp"
    mv -f "$policy.tmp" "$policy"
  fi

  # 2. Install; refresh the package lists only when the first try fails.
  export DEBIAN_FRONTEND=noninteractive
  echo "installing Debian's prometheus package" >&2
  # (9>&-: a daemon the postinst might start must not hold the lock.)
  if ! apt-get install -y --no-install-recommends prometheus >&2 9>&-; then
    apt-get update >&2 9>&-
    apt-get install -y --no-install-recommends prometheus >&2 9>&-
  fi
  if ! installed; then
    echo "error: apt-get finished but $prometheus or $promtool is missing" >&2
    exit 1
  fi

  # 3. Should the service have started anyway, stop it: this install is for tests.
  stop_service
else
  pids="$(service_pids)"
  if [ -n "$pids" ]; then
    # Installed before and running as a service: not ours to stop. The test does not use it.
    echo "note: a system prometheus service is running (pids: $(echo $pids)); the test starts its own" >&2
  fi
fi

# 4. Check that both start.
for bin in "$prometheus" "$promtool"; do
  if ! out="$("$bin" --version 2>&1)"; then
    echo "error: $bin --version failed:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$out" | head -n1 >&2
done
echo "prometheus=$prometheus promtool=$promtool"
