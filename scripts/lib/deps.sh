# Installs what building and testing Klaxon needs, only when missing (Debian/Ubuntu, apt).
# Sourced by scripts/run and scripts/test.

klaxon_ensure_deps() {
  local need=()
  pkg-config --exists libprotobuf-c 2>/dev/null || need+=(libprotobuf-c-dev)
  command -v protoc-c >/dev/null 2>&1 || need+=(protobuf-c-compiler)
  command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
  pkg-config --exists libpq 2>/dev/null || need+=(libpq-dev)
  klaxon_pg_bin >/dev/null 2>&1 || need+=(postgresql)
  command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
  if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  command -v swift >/dev/null 2>&1 || { echo "swift is not on PATH (Swift 6.1 or newer is required)" >&2; return 1; }
}

# A real monitor for the tests: Prometheus Alertmanager (sends PagerDuty Events v2).
klaxon_ensure_test_deps() {
  # prometheus-alertmanager (a real PagerDuty-speaking monitor); openssl (the TLS tests' CA);
  # chromium and chromium-driver (the incident page in a real browser); pgbouncer (Klaxon
  # behind it in transaction mode).
  local need=()
  command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
  [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
  [ ${#need[@]} -eq 0 ] && return 0
  echo "==> installing ${need[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# Python packages the tests use: protobuf (an independent implementation of the wire contract),
# aiosmtpd (a real SMTP server for the email channel), icalendar (a real iCal parser for the
# schedule feeds), pagerduty (PagerDuty's own Events API v2 client, over https) and selenium
# (drives headless Chromium through the incident page), twilio (its RequestValidator signs the
# Twilio stand-in's callbacks), opsgenie-sdk (Opsgenie's own Python client, against the
# Opsgenie Alert API) and standardwebhooks (verifies the outbound webhooks' signatures).
klaxon_ensure_python_protobuf() {
  local module package
  for pair in google.protobuf:protobuf aiosmtpd:aiosmtpd icalendar:icalendar pagerduty:pagerduty==7.2.0 selenium:selenium twilio:twilio opsgenie_sdk:opsgenie-sdk==2.1.5 standardwebhooks:standardwebhooks==1.3.0; do
    module=${pair%%:*}; package=${pair##*:}
    python3 -c "import $module" 2>/dev/null && continue
    echo "==> installing the Python $package package"
    python3 -m pip install -q "$package" 2>/dev/null || python3 -m pip install -q --break-system-packages "$package"
  done
}
