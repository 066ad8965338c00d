#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) for tests and benchmarks.
#
#   bash deploy/local/kafka.sh fetch                       # download jars (Maven) into deploy/local/.kafka/libs
#   bash deploy/local/kafka.sh up [--dir DIR] [--port N] [--scram] [--fresh]
#   bash deploy/local/kafka.sh status [--dir DIR]          # exit 0 + bootstrap if running
#   bash deploy/local/kafka.sh down [--dir DIR]            # SIGTERM, then SIGKILL after a timeout
#   bash deploy/local/kafka.sh kill [--dir DIR]            # SIGKILL at once (crash tests)
#
# `up` prints the bootstrap address (127.0.0.1:PORT) as its last stdout line and also writes it to
# DIR/bootstrap; with --scram the SASL_PLAINTEXT (SCRAM-SHA-512/256) address goes to DIR/sasl_bootstrap.
# A DIR that was already formatted is restarted with its previous config (same ports, same data).
# No Docker, no download at `up` time besides the one-off `fetch`.
#
# Environment knobs (all optional):
#   JAVA_HOME / JAVA               java to use (default: $JAVA_HOME/bin/java, else `java` on PATH)
#   KAFKA_HEAP_OPTS                default "-Xmx512m -Xms128m"
#   KAFKA_JVM_PERFORMANCE_OPTS     default G1 with short pauses
#   KAFKA_OPTS                     extra JVM flags
#   KAFKA_LOG_LEVEL                root log level of DIR/server.log (default INFO)
#   KAFKA_START_TIMEOUT            seconds `up` waits for the broker to answer (default 60)
#   KAFKA_STOP_TIMEOUT             seconds `down` waits after SIGTERM before SIGKILL (default 30)
#   KAFKA_SCRAM_USER / KAFKA_SCRAM_PASSWORD   SCRAM user created by `up --scram` (cmdb / cmdb-secret)
#   CMDB_KAFKA_HOME                where `fetch` puts libs/ (default deploy/local/.kafka)
#   CMDB_KAFKA_M2                  maven local repo (default deploy/local/.m2)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_HOME="${CMDB_KAFKA_HOME:-$SCRIPT_DIR/.kafka}"
LIBS="$KAFKA_HOME/libs"
M2_REPO="${CMDB_KAFKA_M2:-$SCRIPT_DIR/.m2}"
POM="$SCRIPT_DIR/pom.xml"
DEFAULT_DIR="$SCRIPT_DIR/.run"

SCRAM_USER="${KAFKA_SCRAM_USER:-cmdb}"
SCRAM_PASSWORD="${KAFKA_SCRAM_PASSWORD:-cmdb-secret}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

java_bin() {
  if [[ -n "${JAVA:-}" ]]; then
    echo "$JAVA"
  elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    die "no java found (install a JDK 17+ or set JAVA_HOME)"
  fi
}

# ---------------------------------------------------------------- fetch
pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

libs_ready() {
  [[ -f "$LIBS/.fetched" ]] && [[ "$(cat "$LIBS/.fetched")" == "$(pom_hash)" ]] &&
    compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null
}

cmd_fetch() {
  command -v mvn >/dev/null 2>&1 || { libs_ready && return 0; die "mvn not found (apt-get install maven)"; }
  mkdir -p "$KAFKA_HOME"
  # serialize concurrent fetches (e.g. two test sessions starting at once)
  exec 9>"$KAFKA_HOME/.fetch.lock"
  flock 9
  if libs_ready; then
    log "libs already present in $LIBS"
    exec 9>&-
    return 0
  fi
  rm -rf "$LIBS"
  local mvn_args=(-q -B -ntp -Dstyle.color=never -f "$POM" "-Dmaven.repo.local=$M2_REPO" "-Dkafka.libs.dir=$LIBS"
                  dependency:copy-dependencies)
  log "fetching Kafka jars with Maven into $LIBS (maven repo $M2_REPO)"
  # offline first: works without network once .m2 is populated
  if [[ -d "$M2_REPO" ]] && mvn -o "${mvn_args[@]}" >"$KAFKA_HOME/fetch.log" 2>&1; then
    :
  elif mvn "${mvn_args[@]}" >"$KAFKA_HOME/fetch.log" 2>&1; then
    :
  else
    cat "$KAFKA_HOME/fetch.log" >&2
    die "maven fetch failed (see above)"
  fi
  compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null || die "maven ran but no kafka jar in $LIBS"
  pom_hash >"$LIBS/.fetched"
  local jars=("$LIBS"/*.jar) core=("$LIBS"/kafka_2.13-*.jar)
  log "fetched ${#jars[@]} jars ($(basename "${core[0]}"))"
  exec 9>&-
}

ensure_libs() { libs_ready || cmd_fetch; }

# ---------------------------------------------------------------- helpers
# Print N distinct free TCP ports on 127.0.0.1, one per line.
free_ports() {
  local n="$1"
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$n" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
PY
  else
    # fallback: random high ports nobody is listening on
    local got=() p
    while ((${#got[@]} < n)); do
      p=$((20000 + RANDOM % 40000))
      [[ " ${got[*]} " == *" $p "* ]] && continue
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then got+=("$p"); fi
    done
    printf '%s\n' "${got[@]}"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

prop() { # prop FILE KEY -> value
  sed -n "s/^$2=//p" "$1" | tail -n1
}

pid_of() { # prints pid if the broker of DIR runs
  local dir="$1" pid
  [[ -f "$dir/kafka.pid" ]] || return 1
  pid="$(cat "$dir/kafka.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against a recycled pid: must be our java with our server.properties
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/server.properties" || return 1
  fi
  echo "$pid"
}

parse_dir_args() { # sets DIR, PORT, SCRAM, FRESH
  DIR="$DEFAULT_DIR"; PORT=""; SCRAM=0; FRESH=0
  while (($#)); do
    case "$1" in
      --dir) DIR="${2:?--dir needs a value}"; shift 2 ;;
      --dir=*) DIR="${1#--dir=}"; shift ;;
      --port) PORT="${2:?--port needs a value}"; shift 2 ;;
      --port=*) PORT="${1#--port=}"; shift ;;
      --scram) SCRAM=1; shift ;;
      --fresh) FRESH=1; shift ;;
      *) die "unknown argument: $1" ;;
    esac
  done
  [[ -z "$PORT" || "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number"
  DIR="$(realpath -m -- "$DIR")"
}

write_config() { # write_config PORT CPORT SPORT(or empty)
  local port="$1" cport="$2" sport="$3"
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  local advertised="PLAINTEXT://127.0.0.1:$port"
  local protomap="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [[ -n "$sport" ]]; then
    listeners+=",SASL_PLAINTEXT://127.0.0.1:$sport"
    advertised+=",SASL_PLAINTEXT://127.0.0.1:$sport"
    protomap+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
  fi
  cat >"$DIR/server.properties" <<EOF
# generated by deploy/local/kafka.sh -- single-node KRaft (combined broker + controller)
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protomap
log.dirs=$DIR/data

# single node, small machine
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=33554432
log.retention.hours=24
# a restart after SIGKILL waits for the old incarnation's session to expire (default 9 s)
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=5000
EOF
  if [[ -n "$sport" ]]; then
    cat >>"$DIR/server.properties" <<'EOF'

# SCRAM on the SASL_PLAINTEXT listener (users are created at format time with --add-scram)
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
  fi
}

write_log4j2() {
  local level="${KAFKA_LOG_LEVEL:-INFO}"
  cat >"$DIR/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by deploy/local/kafka.sh -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="$DIR/server.log" filePattern="$DIR/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="$level"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log.LogCleaner" level="WARN"/>
  </Loggers>
</Configuration>
EOF
}

is_formatted() { [[ -f "$DIR/data/meta.properties" ]]; }

# Does the broker answer an admin request? (ListTopics via the Kafka CLI)
broker_answers() {
  local bootstrap="$1" java
  java="$(java_bin)"
  timeout 30 "$java" -Xmx128m -XX:TieredStopAtLevel=1 -Xshare:auto \
    "-Dlog4j2.configurationFile=$DIR/log4j2-tools.xml" -cp "$LIBS/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
    --command-config "$DIR/tools.properties" --list >/dev/null 2>>"$DIR/probe.log"
}

# ---------------------------------------------------------------- up
# Fresh DIR: pick free ports, write server.properties, format the storage (with SCRAM users).
format_fresh() {
  local java="$1" ports avail=() p
  rm -rf "$DIR/data"
  mapfile -t ports < <(free_ports 4)
  for p in "${ports[@]}"; do [[ "$p" != "$PORT" ]] && avail+=("$p"); done
  local port="${PORT:-${avail[0]}}" cport="${avail[1]}" sport=""
  ((SCRAM)) && sport="${avail[2]}"
  write_config "$port" "$cport" "$sport"
  local cluster_id
  cluster_id="$("$java" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
  [[ -n "$cluster_id" ]] || die "StorageTool random-uuid failed"
  echo "$cluster_id" >"$DIR/cluster_id"
  local fmt=("$java" -Xmx256m -cp "$LIBS/*" kafka.tools.StorageTool format --standalone
             -t "$cluster_id" -c "$DIR/server.properties")
  if ((SCRAM)); then
    fmt+=(--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]"
          --add-scram "SCRAM-SHA-256=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]")
  fi
  "${fmt[@]}" >"$DIR/format.log" 2>&1 || { cat "$DIR/format.log" >&2; die "storage format failed"; }
}

# Start the JVM in the background and wait until it answers.
# Returns 0 when ready, 2 if it died because a port was taken, 1 on any other failure.
launch_and_wait() {
  local java="$1" port sport pid
  port="$(sed -n 's#^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\).*#\1#p' "$DIR/server.properties")"
  sport="$(sed -n 's#^advertised.listeners=.*SASL_PLAINTEXT://127.0.0.1:\([0-9]*\).*#\1#p' "$DIR/server.properties")"
  [[ -n "$port" ]] || die "cannot read the port from $DIR/server.properties (use --fresh)"
  local bootstrap="127.0.0.1:$port"

  write_log4j2
  sed 's#<Root level="[A-Z]*">#<Root level="ERROR">#; s#server.log#probe-tools.log#g' \
    "$DIR/log4j2.xml" >"$DIR/log4j2-tools.xml"
  printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n' >"$DIR/tools.properties"

  # shellcheck disable=SC2086
  nohup "$java" ${KAFKA_HEAP_OPTS:--Xmx512m -Xms128m} \
    ${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent} \
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$DIR/log4j2.xml" "-Dkafka.logs.dir=$DIR" \
    ${KAFKA_OPTS:-} -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties" \
    </dev/null >"$DIR/kafka.out" 2>&1 &
  pid=$!
  echo "$pid" >"$DIR/kafka.pid"
  echo "$bootstrap" >"$DIR/bootstrap"
  if [[ -n "$sport" ]]; then echo "127.0.0.1:$sport" >"$DIR/sasl_bootstrap"; else rm -f "$DIR/sasl_bootstrap"; fi

  local start=$SECONDS
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$DIR/kafka.pid"
      if grep -qs "Address already in use" "$DIR/kafka.out" "$DIR/server.log"; then
        log "broker could not bind its ports: $(grep -hs "Address already in use" "$DIR/kafka.out" "$DIR/server.log" | tail -n1 | cut -c1-200)"
        return 2
      fi
      log "broker exited during startup; last log lines:"
      tail -n 30 "$DIR/kafka.out" >&2 || true
      tail -n 30 "$DIR/server.log" >&2 2>/dev/null || true
      return 1
    fi
    if ((SECONDS - start >= START_TIMEOUT)); then
      log "broker not ready after ${START_TIMEOUT}s; killing it. last log lines:"
      tail -n 30 "$DIR/server.log" >&2 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$DIR/kafka.pid"
      return 1
    fi
    if port_open "$port" && { [[ -z "$sport" ]] || port_open "$sport"; } &&
       broker_answers "$bootstrap"; then
      break
    fi
    sleep 0.5
  done
  log "broker up in $((SECONDS - start))s (pid $pid, dir $DIR${sport:+, sasl 127.0.0.1:$sport})"
}

cmd_up() {
  parse_dir_args "$@"
  mkdir -p "$DIR"
  local pid
  if pid="$(pid_of "$DIR")"; then
    log "already running (pid $pid) in $DIR"
    cat "$DIR/bootstrap"
    return 0
  fi
  ensure_libs
  local java; java="$(java_bin)"

  if ((FRESH)); then
    rm -rf "$DIR/data" "$DIR/server.properties" "$DIR/bootstrap" "$DIR/sasl_bootstrap" \
      "$DIR/cluster_id" "$DIR"/server.log* "$DIR/kafka.out" "$DIR/probe.log"
  fi

  local restart=0
  if is_formatted && [[ -f "$DIR/server.properties" ]]; then
    # restart: keep config, ports and data
    local old_port
    old_port="$(sed -n 's#^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\).*#\1#p' "$DIR/server.properties")"
    if [[ -n "$PORT" && "$PORT" != "$old_port" ]]; then
      die "$DIR already holds a broker formatted for port $old_port (use --fresh to start over)"
    fi
    if ((SCRAM)) && ! grep -q '^sasl.enabled.mechanisms=' "$DIR/server.properties"; then
      die "$DIR was formatted without --scram (use --fresh to start over)"
    fi
    log "restarting existing broker data in $DIR"
    restart=1
  fi

  local attempt rc=1
  for attempt in 1 2 3; do
    ((restart)) || format_fresh "$java"
    if launch_and_wait "$java"; then rc=0; else rc=$?; fi
    # a free port grabbed by someone else between picking and binding: pick new ones
    if ((rc == 2 && !restart)) && [[ -z "$PORT" ]]; then
      log "retrying with other ports (attempt $((attempt + 1)))"
      continue
    fi
    break
  done
  ((rc == 0)) || die "broker did not start (see $DIR/server.log)"
  cat "$DIR/bootstrap"
}

# ---------------------------------------------------------------- down / kill / status
cmd_down() {
  parse_dir_args "$@"
  local pid
  if ! pid="$(pid_of "$DIR")"; then
    rm -f "$DIR/kafka.pid" 2>/dev/null || true
    log "not running ($DIR)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - start >= STOP_TIMEOUT)); then
      log "still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$DIR/kafka.pid"
  log "stopped (pid $pid) in $((SECONDS - start))s"
}

cmd_kill() {
  parse_dir_args "$@"
  local pid
  if pid="$(pid_of "$DIR")"; then
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    log "killed (pid $pid)"
  fi
  rm -f "$DIR/kafka.pid"
}

cmd_status() {
  parse_dir_args "$@"
  local pid
  if pid="$(pid_of "$DIR")" && [[ -f "$DIR/bootstrap" ]]; then
    log "running (pid $pid)${DIR:+ in $DIR}"
    cat "$DIR/bootstrap"
    return 0
  fi
  log "not running ($DIR)"
  return 1
}

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  case "$cmd" in
    fetch) cmd_fetch "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    kill) cmd_kill "$@" ;;
    status) cmd_status "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
