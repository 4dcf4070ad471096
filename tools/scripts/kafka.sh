#!/usr/bin/env bash
# Runs a throwaway single-node Apache Kafka (KRaft: broker and controller in
# one JVM) on 127.0.0.1 for orderflow's tests.
#
# There is no Docker and no apache.org download here: Kafka runs from its
# Maven Central jars (org.apache.kafka:kafka_2.13 and what it depends on),
# resolved once by mvn into a cache and started with the machine's java.
#
#   tools/scripts/kafka.sh start|stop|restart|status
#   tools/scripts/kafka.sh acl ARGS...   Kafka's AclCommand against the running
#                                        broker's PLAINTEXT listener
#
# Environment (defaults in brackets):
#   KAFKA_VERSION          [4.3.1] Kafka release from Maven Central (3.9.x and 4.x work)
#   KAFKA_HOST             [127.0.0.1] the address the client listener binds and
#                          advertises (the cluster tier: its node's bridge, 10.244.0.1)
#   KAFKA_PORT             [19092] client (PLAINTEXT) port on KAFKA_HOST
#   KAFKA_CONTROLLER_PORT  [19093] KRaft controller port on 127.0.0.1
#   KAFKA_SASL_LISTENER    [] host:port of a second listener, SASL_PLAINTEXT with
#                          SCRAM-SHA-512, where ACLs apply (the cluster tier's
#                          Pods: 10.244.0.1:29094); the PLAINTEXT listener's
#                          clients (User:ANONYMOUS) are then super users
#   KAFKA_SCRAM_USERS      [] "name=password ..." SCRAM-SHA-512 credentials made
#                          when the storage is formatted (with KAFKA_CLEAN=1)
#   ORDERFLOW_CACHE        [$HOME/.cache/orderflow]
#   KAFKA_DATA             [$ORDERFLOW_CACHE/kafka-$KAFKA_VERSION/run-$KAFKA_PORT]
#   KAFKA_HEAP             [-Xmx512m]
#   KAFKA_JVM_OPTS         [] extra JVM flags
#   KAFKA_EXTRA_CONFIG     [] extra server.properties lines (newline separated)
#   KAFKA_CLEAN            [0] 1: wipe KAFKA_DATA before start (fresh cluster)
#   KAFKA_START_TIMEOUT    [90] seconds to wait for the broker to serve
set -euo pipefail

# 4.3.1 is the newest release whose artifacts are all on Maven Central (4.4.0
# is listed, but kafka-tools-api 4.4.0 is missing there, so it cannot be
# resolved). Its classes target Java 17, which is what this machine runs.
KAFKA_VERSION=${KAFKA_VERSION:-4.3.1}
SCALA_BINARY=2.13
KAFKA_HOST=${KAFKA_HOST:-127.0.0.1}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
CACHE_ROOT=${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}
KAFKA_CACHE=$CACHE_ROOT/kafka-$KAFKA_VERSION
# Data lives under the version's folder: a log dir formatted by one Kafka
# version is not guaranteed to start under another.
KAFKA_DATA=${KAFKA_DATA:-$KAFKA_CACHE/run-$KAFKA_PORT}
KAFKA_HEAP=${KAFKA_HEAP:--Xmx512m}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:-}
KAFKA_EXTRA_CONFIG=${KAFKA_EXTRA_CONFIG:-}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=30

LIBS=$KAFKA_CACHE/libs
# The marker of a complete resolution; a new name when the set of jars changes.
RESOLVED=.resolved-with-tools
PID_FILE=$KAFKA_DATA/kafka.pid
CONFIG=$KAFKA_DATA/server.properties
LOG=$KAFKA_DATA/server.log
LOG_DIRS=$KAFKA_DATA/logs
# Both 3.x and 4.x ship these two entry points in the kafka_2.13 jar.
SERVER_CLASS=kafka.Kafka
STORAGE_TOOL_CLASS=kafka.tools.StorageTool

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: $*" >&2; exit 1; }

major=${KAFKA_VERSION%%.*}
case $major in
  3|4) ;;
  *) die "KAFKA_VERSION=$KAFKA_VERSION: only 3.x (KRaft) and 4.x are supported" ;;
esac

port_open() { (exec 3<>"/dev/tcp/${2:-$KAFKA_HOST}/$1") 2>/dev/null; }

# Whether process $1 still runs. Not just kill -0, which also succeeds for a
# zombie: the broker outlives start, so init adopts it, and an init that
# reaps late (seen: 1.5-2 s) would make stop wait for nothing. An exited
# process has released its ports, files and locks, zombie or not.
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

# The pid of our broker, if the pid file names a live process that really is
# this broker (a stale file after a reboot could name an unrelated process).
running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SERVER_CLASS $CONFIG" || return 1
  echo "$pid"
}

# Logging: 4.x uses log4j2 (log4j-core comes with kafka_2.13 but the slf4j
# binding does not); 3.x logs through log4j 1.x, for which reload4j is the
# maintained drop-in. Without a binding the server logs nothing at all, and
# "Kafka Server started" is how start knows the broker is up.
logging_deps() {
  if [ "$major" -ge 4 ]; then
    cat <<'EOF'
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.4</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.25.4</version></dependency>
EOF
  else
    cat <<'EOF'
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
EOF
  fi
}

write_logging_config() {
  if [ "$major" -ge 4 ]; then
    cat >"$KAFKA_CACHE/log4j2.properties" <<'EOF'
# Everything to stdout, which start redirects into $KAFKA_DATA/server.log.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# Request logging at INFO is per request: far too chatty for tests.
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
  else
    cat >"$KAFKA_CACHE/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
EOF
  fi
}

# Sets LOGGING_FLAGS (an array). log4j2 registers its own JVM shutdown hook,
# which stops logging while Kafka's shutdown hook is still running: server.log
# then ends a few lines after "Terminating process due to signal SIGTERM"
# (plus "Unable to register Log4j shutdown hook because JVM is shutting down.
# Using SimpleLogger"), so a clean shutdown looks like a crash. Without the
# hook the console appender writes (and flushes) every line up to the JVM's
# exit, and stop can check that the shutdown completed.
logging_jvm_flags() {
  if [ "$major" -ge 4 ]; then
    LOGGING_FLAGS=("-Dlog4j2.configurationFile=$KAFKA_CACHE/log4j2.properties" -Dlog4j2.shutdownHookEnabled=false)
  else
    LOGGING_FLAGS=("-Dlog4j.configuration=file:$KAFKA_CACHE/log4j.properties")
  fi
}

# Resolve the jars once per version. The marker is written last, so a run
# interrupted halfway (or a failed download) resolves again next time; with
# the marker present this costs nothing, no mvn at all.
resolve_jars() {
  [ -f "$KAFKA_CACHE/$RESOLVED" ] && return 0
  # Brokers on other ports share this version's jars: resolve them once.
  mkdir -p "$KAFKA_CACHE"
  exec 8>"$KAFKA_CACHE/.resolve.lock"
  flock 8
  if [ -f "$KAFKA_CACHE/$RESOLVED" ]; then exec 8>&-; return 0; fi
  command -v mvn >/dev/null || die "mvn is needed to fetch Kafka from Maven Central (apt-get install maven)"
  say "resolving org.apache.kafka:kafka_$SCALA_BINARY:$KAFKA_VERSION from Maven Central into $LIBS"
  mkdir -p "$KAFKA_CACHE"
  cat >"$KAFKA_CACHE/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by tools/scripts/kafka.sh: only used to resolve Kafka's runtime classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>orderflow.tools</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$SCALA_BINARY</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- The command-line tools' classes: AclCommand (kafka.sh acl). -->
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
$(logging_deps)
  </dependencies>
  <build>
    <plugins>
      <!-- Pinned: Maven 3.8's default dependency plugin is very old. -->
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version></plugin>
    </plugins>
  </build>
</project>
EOF
  rm -rf "$LIBS.tmp"
  # mvn's output goes to a file and is shown only on failure: quiet mode
  # still prints terminal escape codes.
  if ! mvn -q -B -f "$KAFKA_CACHE/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >"$KAFKA_CACHE/mvn.log" 2>&1; then
    rm -rf "$LIBS.tmp"
    tail -n 30 "$KAFKA_CACHE/mvn.log" >&2
    die "could not resolve Kafka $KAFKA_VERSION from Maven Central (is that release fully published? try KAFKA_VERSION=4.3.1)"
  fi
  rm -rf "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
  write_logging_config
  touch "$KAFKA_CACHE/$RESOLVED"
  exec 8>&-
}

write_server_config() {
  cat >"$CONFIG" <<EOF
# Generated by tools/scripts/kafka.sh on every start; edit the script instead.
process.roles=broker,controller
node.id=1
# Static single-voter quorum: works on 3.9 and 4.x without --standalone.
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT${KAFKA_SASL_LISTENER:+,SASL://$KAFKA_SASL_LISTENER}
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT${KAFKA_SASL_LISTENER:+,SASL://$KAFKA_SASL_LISTENER}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT
log.dirs=$LOG_DIRS

# Tests create their topics explicitly; a typo must fail, not make a topic.
auto.create.topics.enable=false
num.partitions=12
default.replication.factor=1
min.insync.replicas=1
# One broker: every internal topic has to live with replication factor 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: they are created on first
# use (first consumer group, first transaction) and that is then quicker.
offsets.topic.num.partitions=12
transaction.state.log.num.partitions=12
# Consumers in tests should get their assignment at once, not after 3 s.
group.initial.rebalance.delay.ms=0
EOF
  if [ -n "${KAFKA_SASL_LISTENER:-}" ]; then
    cat >>"$CONFIG" <<EOF

# KAFKA_SASL_LISTENER: SCRAM logins there, ACLs for everyone but the
# PLAINTEXT listener's (and the controller's) anonymous clients.
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
  fi
  if [ -n "$KAFKA_EXTRA_CONFIG" ]; then
    printf '\n# KAFKA_EXTRA_CONFIG\n%s\n' "$KAFKA_EXTRA_CONFIG" >>"$CONFIG"
  fi
}

# A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
# Made here rather than by `StorageTool random-uuid`, which costs a JVM start.
# Kafka itself avoids ids starting with '-' (they read as CLI flags), so do we.
new_cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [ "${id:0:1}" != "-" ] && { echo "$id"; return; }
  done
}

# The JVM command line, as an array so that paths with spaces and the
# classpath wildcard (expanded by java, not by the shell) survive.
java_cmd() {
  JAVA_CMD=(java)
  # shellcheck disable=SC2206 # KAFKA_HEAP and KAFKA_JVM_OPTS are flag lists
  JAVA_CMD+=($KAFKA_HEAP $KAFKA_JVM_OPTS)
  logging_jvm_flags
  JAVA_CMD+=(-Djava.awt.headless=true "${LOGGING_FLAGS[@]}" -cp "$LIBS/*")
}

format_storage() {
  # meta.properties is what the format step writes into the log dir.
  [ -f "$LOG_DIRS/meta.properties" ] && return 0
  local id
  id=$(new_cluster_id)
  say "formatting $LOG_DIRS (cluster id $id)"
  mkdir -p "$LOG_DIRS"
  java_cmd
  local scram=() user
  for user in ${KAFKA_SCRAM_USERS:-}; do
    scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%=*},password=${user#*=}]")
  done
  if ! "${JAVA_CMD[@]}" "$STORAGE_TOOL_CLASS" format -t "$id" -c "$CONFIG" "${scram[@]}" >>"$LOG" 2>&1 8>&- 9>&-; then
    tail -n 30 "$LOG" >&2
    die "formatting the storage failed (log: $LOG)"
  fi
}

# Kafka runs on the machine's Java and is resolved by Maven: Debian's, when
# either is missing.
install_java() {
  command -v java >/dev/null && command -v mvn >/dev/null && return 0
  say "installing Java and Maven for the Kafka broker (once)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openjdk-17-jre-headless maven >&2
}

start() {
  local pid
  if pid=$(running_pid); then
    say "already running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT"
    return 0
  fi
  install_java
  rm -f "$PID_FILE"
  if [ "${KAFKA_CLEAN:-0}" = 1 ]; then
    say "KAFKA_CLEAN=1: wiping $KAFKA_DATA"
    rm -rf "$KAFKA_DATA"
  fi
  # Something else on our ports (e.g. a broker whose data dir was deleted
  # under it) would make the new broker fail in a confusing way later.
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT on $KAFKA_HOST is already in use by another process"
  port_open "$KAFKA_CONTROLLER_PORT" 127.0.0.1 && die "port $KAFKA_CONTROLLER_PORT on 127.0.0.1 is already in use by another process"

  resolve_jars
  mkdir -p "$KAFKA_DATA"
  write_server_config
  format_storage

  # Only the part of the log written by this start counts: an old
  # "Kafka Server started" from before a restart must not fool the wait.
  local offset=0
  [ -f "$LOG" ] && offset=$(stat -c %s "$LOG")
  echo "===== kafka.sh start $(date '+%F %T') =====" >>"$LOG"

  say "starting Kafka $KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT, data $KAFKA_DATA)"
  # nohup + stdin from /dev/null: the broker outlives this script and the
  # shell or CI step that ran it. nohup execs java, so $! is java's pid.
  # Fds 8 and 9 hold our flock locks: the broker must not inherit them, or
  # it would keep the lock for its whole life and block the next stop.
  java_cmd
  nohup "${JAVA_CMD[@]}" "$SERVER_CLASS" "$CONFIG" >>"$LOG" 2>&1 </dev/null 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"

  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while :; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      tail -c +"$((offset + 1))" "$LOG" | tail -n 40 >&2
      die "the broker exited during startup (log: $LOG)"
    fi
    # Both: the log line says the broker finished starting up, the open
    # port says clients can connect now.
    # (grep reads a process substitution, not a pipe: `tail | grep -q` under
    # pipefail fails whenever grep's early exit kills tail with SIGPIPE,
    # which a long log after a restart made happen.)
    if grep -q "Kafka Server started" < <(tail -c +"$((offset + 1))" "$LOG") && port_open "$KAFKA_PORT"; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -c +"$((offset + 1))" "$LOG" | tail -n 40 >&2
      stop >/dev/null || true
      die "the broker did not come up within ${KAFKA_START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.3
  done
  # Started is not yet serving: after a restart the broker says "Kafka Server
  # started" while it still leads none of its partitions (see
  # leaderless_partitions). Until it does, produce, fetch, list-offsets and
  # offset commits fail with NOT_LEADER_OR_FOLLOWER or "coordinator load in
  # progress", so "ready" waits for that too. On a first start (no topics)
  # or after a crash (the partitions kept their leader) there is nothing to
  # wait for.
  local pending
  while pending=$(leaderless_partitions "$offset") && [ "$pending" -gt 0 ]; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      tail -c +"$((offset + 1))" "$LOG" | tail -n 40 >&2
      die "the broker exited during startup (log: $LOG)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "warning: $pending partition(s) still have no leader after ${KAFKA_START_TIMEOUT}s (log: $LOG)"
      break
    fi
    sleep 0.2
  done
  say "ready: bootstrap $KAFKA_HOST:$KAFKA_PORT (pid $pid, log $LOG)"
}

# How many partitions this start has taken up without leading them yet,
# from the state-change log written since byte offset $1. A stop is a
# controlled shutdown: the controller takes leadership away from the broker
# before it goes (with a single replica that leaves leader -1; Kafka 4's
# eligible leader replicas keep the broker in the ELR). When it comes back
# it first loads every partition as a follower of "leader -1" and only then,
# after the controller re-elected it, logs "Leader <partition> ... starts at
# leader epoch": about 1-2 s after "Kafka Server started" for 200 partitions.
leaderless_partitions() {
  tail -c +"$(($1 + 1))" "$LOG" | awk '
    / Follower [^ ]+ starts at leader epoch / {
      for (i = 1; i < NF; i++) if ($i == "Follower") break
      if (/Current leader is -1\./) p[$(i + 1)] = 1; else delete p[$(i + 1)]
    }
    / Leader [^ ]+ with topic id .* starts at leader epoch / {
      for (i = 1; i < NF; i++) if ($i == "Leader") break
      delete p[$(i + 1)]
    }
    END { n = 0; for (k in p) n++; print n }'
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  say "stopping pid $pid"
  # SIGTERM runs Kafka's shutdown hook: controlled shutdown, then the log
  # manager flushes every partition, writes the high-watermark and
  # recovery-point checkpoints and last of all the clean-shutdown marker, so
  # the next start skips log recovery. Nothing acknowledged is lost even
  # without it (killed, the broker recovers its logs on the next start), but
  # only a completed shutdown is a clean one, so it is waited for and checked.
  local offset=0 killed=0
  [ -f "$LOG" ] && offset=$(stat -c %s "$LOG")
  # A marker left by an earlier clean stop must not vouch for this one
  # (start removes it anyway once the logs are loaded).
  rm -f "$LOG_DIRS/.kafka_cleanshutdown"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "still alive after ${KAFKA_STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      killed=1
      break
    fi
    sleep 0.1
  done
  # Reap-free wait: the process is not our child, so poll until it is gone.
  while alive "$pid"; do sleep 0.1; done
  rm -f "$PID_FILE"
  if [ "$killed" = 0 ] && [ -f "$LOG_DIRS/.kafka_cleanshutdown" ] &&
      grep -q "\[BrokerServer id=[0-9]*\] shut down completed" < <(tail -c +"$((offset + 1))" "$LOG" 2>/dev/null); then
    echo "===== kafka.sh stop $(date '+%F %T'): clean shutdown =====" >>"$LOG"
    say "stopped (clean shutdown)"
  else
    echo "===== kafka.sh stop $(date '+%F %T'): shutdown did NOT complete =====" >>"$LOG"
    say "warning: the broker's shutdown did not complete (log: $LOG); the next start recovers its logs"
    say "stopped"
  fi
}

status() {
  local pid
  if pid=$(running_pid); then
    if port_open "$KAFKA_PORT"; then
      say "running (pid $pid), bootstrap $KAFKA_HOST:$KAFKA_PORT, data $KAFKA_DATA"
    else
      say "process $pid is alive but $KAFKA_HOST:$KAFKA_PORT does not accept connections (log: $LOG)"
    fi
    return 0
  fi
  say "not running"
  return 1
}

# One start/stop at a time per data dir: parallel test jobs calling start
# would otherwise race to format and launch two brokers on one port.
with_lock() {
  mkdir -p "$(dirname "$KAFKA_DATA")"
  exec 9>"$KAFKA_DATA.lock"
  flock 9
  "$@"
}

# Kafka's AclCommand against the running broker's PLAINTEXT listener.
acl() {
  resolve_jars
  java_cmd
  "${JAVA_CMD[@]}" org.apache.kafka.tools.AclCommand --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" "$@" 8>&- 9>&-
}

case "${1:-}" in
  start) with_lock start ;;
  stop) with_lock stop ;;
  restart) with_lock stop && with_lock start ;;
  status) status ;;
  acl) shift; acl "$@" ;;
  *) echo "usage: $0 start|stop|restart|status|acl ARGS..." >&2; exit 2 ;;
esac
