#!/usr/bin/env bash
# `make demo` / `make demo-down`: the worker on a local broker, fed the sample week.
#
#   bash deploy/local/demo.sh up     # broker, topics, sample week produced, worker running
#   bash deploy/local/demo.sh down   # stop the worker and the broker, delete their data
#
# `up` starts a single-node Kafka (deploy/local/kafka.sh) in CMDB_DEMO_DIR, creates the worker's
# topics and sends examples/events.jsonl with the project's own producer (`cmdb-worker produce`:
# each event to its contract topic, keyed by CI, change or lesson id), then starts
# `cmdb-worker run` in the background and waits until it is ready. The worker judges time by the
# events (CMDB_WORKER_CLOCK=event), as `make run` does, since the sample week is in the past.
#
# Knobs: CMDB_DEMO_DIR (default deploy/local/.demo), CMDB_DEMO_HTTP_PORT (default 9108),
# CMDB_DEMO_BIN (default .venv/bin), CMDB_DEMO_EVENTS (default examples/events.jsonl).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${CMDB_DEMO_DIR:-$ROOT/deploy/local/.demo}"
HTTP_PORT="${CMDB_DEMO_HTTP_PORT:-9108}"
BIN="${CMDB_DEMO_BIN:-$ROOT/.venv/bin}"
EVENTS="${CMDB_DEMO_EVENTS:-$ROOT/examples/events.jsonl}"
KAFKA_SH="$ROOT/deploy/local/kafka.sh"
READY_TIMEOUT=120

log() { echo "demo: $*" >&2; }

worker_env() {  # EXEC=exec replaces the calling (sub)shell, so $! is the worker's own pid
  ${EXEC:-} env -u CMDB_WORKER_CONFIG \
    CMDB_WORKER_BOOTSTRAP_SERVERS="$1" CMDB_WORKER_CLOCK=event CMDB_WORKER_INSTANCE_ID=demo \
    CMDB_WORKER_HTTP_HOST=127.0.0.1 CMDB_WORKER_HTTP_PORT="$HTTP_PORT" "${@:2}"
}

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$BIN/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
      "http://127.0.0.1:$HTTP_PORT/readyz" 2>/dev/null; do
    kill -0 "$(cat "$DIR/worker.pid")" 2>/dev/null || { tail -20 "$DIR/worker.log" >&2; return 1; }
    ((SECONDS < deadline)) || { log "worker not ready after ${READY_TIMEOUT}s"; return 1; }
    sleep 0.5
  done
}

cmd_up() {
  [[ -f "$DIR/worker.pid" ]] && kill -0 "$(cat "$DIR/worker.pid")" 2>/dev/null &&
    { log "already running (make demo-down first)"; exit 1; }
  mkdir -p "$DIR"
  local bootstrap
  bootstrap="$(bash "$KAFKA_SH" up --dir "$DIR/kafka" | tail -n 1)"
  log "broker at $bootstrap; producing $EVENTS"
  worker_env "$bootstrap" "$BIN/cmdb-worker" --log-level WARNING produce "$EVENTS"
  (EXEC=exec worker_env "$bootstrap" setsid "$BIN/cmdb-worker" run) >"$DIR/worker.log" 2>&1 </dev/null &
  echo $! >"$DIR/worker.pid"
  wait_ready
  local base="http://127.0.0.1:$HTTP_PORT"
  cat <<TEXT

cmdb-worker is running on the sample week (broker $bootstrap). Look at:
  $base/ui/                         the web view: CI search, pictures, teams, changes, lessons
  $base/api/stale                   stale CIs
  $base/api/lessons?format=yaml     the Lessons Register
  $base/api/cis/service%2Fledger@prod     a CI and its relations (add /impact: blast radius)
  $base/metrics                     Prometheus metrics
  $base/healthz  $base/readyz
Findings are on the topic cmdb.findings, dead letters on cmdb.dlq; the worker's log is
$DIR/worker.log. Stop and clean up with: make demo-down
TEXT
}

cmd_down() {
  if [[ -f "$DIR/worker.pid" ]]; then
    local pid
    pid="$(cat "$DIR/worker.pid")"
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  [[ -d "$DIR/kafka" ]] && bash "$KAFKA_SH" down --dir "$DIR/kafka" >/dev/null 2>&1 || true
  rm -rf "$DIR"
  log "stopped and cleaned up"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
