#!/usr/bin/env bash
# make setup: install what Headwater needs, idempotently, on a machine that may have none of it.
#   system packages (Java, Maven, Postgres, Redis, ClickHouse 18.16) · .venv with the project and its dev and chdb extras · Kafka jars
# `scripts/setup.sh bench` (make bench) also makes .venv-quix, the Quix Streams baseline's own venv;
# `scripts/setup.sh helm` also builds helm for the Helm chart's test (deploy/helm/headwater).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
PYTHON=${PYTHON:-python3}

# --- system packages -------------------------------------------------------------------
missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)                    # make bench's load generator
command -v chromium >/dev/null 2>&1 || missing+=(chromium)          # the posthog-js browser test
# promtool checks deploy/prometheus (tests/unit/test_monitoring.py); the package's service is not needed
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# Debian's ClickHouse server (18.16): the native-protocol and legacy-server contract tests run a process of
# their own (tests/support/clickhouse_server.py); the package's own service is not used
[[ -x /usr/sbin/clickhouse-server ]] || command -v clickhouse-server >/dev/null 2>&1 || missing+=(clickhouse-server)

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    step "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # where an init system runs, the clickhouse-server package starts a server on :8123 and :9000 that
    # nothing here uses (the tests start their own): stop the service this step just installed
    if [[ " ${missing[*]} " == *" clickhouse-server "* ]] && [[ -d /run/systemd/system ]]; then
      systemctl disable --now clickhouse-server >/dev/null 2>&1 || true
    fi
    # Debian's postgresql package starts a cluster of its own; Headwater runs its own. Its prometheus
    # package may start a Prometheus server on :9090 where an init system runs; only promtool is used.
  else
    echo "Headwater needs these system packages: ${missing[*]}" >&2
    echo "Install them, then run make setup again:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
else
  step "system packages: present (java, maven, postgresql, redis-server, node, wrk, chromium, promtool, clickhouse-server)"
fi

# --- Python environment ----------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
  step "creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.headwater-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  step "installing Headwater with its dev and chdb extras into .venv (takes a minute the first time)"
  .venv/bin/pip install -q --upgrade pip wheel
  # setuptools warns that folders named like the packages may shadow them on import; here they
  # are the packages, so that one notice is silenced (every other build warning still prints).
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/pip install -q -e '.[dev,chdb]'
  touch "$stamp"
else
  step ".venv: up to date"
fi

# --- JavaScript SDKs for the tests (posthog-node, posthog-js) --------------------------
if [[ -f tests/node/package-lock.json ]]; then
  if [[ ! -d tests/node/node_modules || tests/node/package-lock.json -nt tests/node/node_modules ]]; then
    step "installing the JavaScript PostHog SDKs the tests drive (npm ci in tests/node)"
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
    touch tests/node/node_modules
  else
    step "tests/node: up to date"
  fi
fi

# --- Kafka jars ------------------------------------------------------------------------
step "Kafka jars (Maven Central, cached once)"
.venv/bin/headwater install-kafka

# --- helm, for the chart's test (scripts/setup.sh helm only) --------------------------------
# Built from its Go module (the Go module proxy serves it) into Headwater's cache directory, once
# per version. Not part of a plain `make setup`: the first build takes ~10 minutes on a busy
# 2-core machine (6.5 CPU-minutes); tests/unit/test_helm_chart.py finds it there and, without it,
# checks only the chart's static files.
HELM_VERSION=v4.3.2
if [[ "${1:-}" == helm ]]; then
  helm_dir="${HEADWATER_CACHE_DIR:-$HOME/.cache/headwater}/helm-$HELM_VERSION"
  if [[ -x $helm_dir/helm ]]; then
    step "helm $HELM_VERSION: present in $helm_dir"
  elif command -v go >/dev/null 2>&1; then
    step "building helm $HELM_VERSION with go install into $helm_dir (~10 minutes the first time)"
    mkdir -p "$helm_dir"
    GOBIN="$helm_dir" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  else
    echo "Go is needed to build helm (Debian: golang-go, or https://go.dev/dl); or install helm $HELM_VERSION on PATH" >&2
    exit 1
  fi
fi

# --- The benchmark's Quix Streams baseline (make bench only) ------------------------------
if [[ "${1:-}" == bench ]]; then
  quix_stamp=.venv-quix/.headwater-installed
  if [[ ! -f $quix_stamp || pyproject.toml -nt $quix_stamp ]]; then
    step "installing Quix Streams and Headwater into .venv-quix, the worker bench's baseline (a minute the first time)"
    [[ -x .venv-quix/bin/python ]] || "$PYTHON" -m venv .venv-quix
    .venv-quix/bin/pip install -q --upgrade pip wheel
    PYTHONWARNINGS="ignore:Editable installation" .venv-quix/bin/pip install -q -e '.[quix]'
    touch "$quix_stamp"
  else
    step ".venv-quix: up to date"
  fi
fi

step "setup done"
