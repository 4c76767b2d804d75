#!/usr/bin/env bash
# Run a real single-node Apache Kafka (KRaft, combined broker+controller) in the
# foreground, from jars fetched once from Maven Central.
#
#   scripts/apache-kafka/start.sh <data-dir> <port> [controller-port]
#
# Clients connect to PLAINTEXT://127.0.0.1:<port>; the controller listens on
# [controller-port] (default <port>+1, which must be free too). The broker's log
# goes to <data-dir>/kafka.log. The script ends in `exec java`, so the PID you
# started is the broker's: kill it (SIGTERM) to stop. Re-running with the same
# <data-dir> keeps its data. Env: LIFECYCLE_KAFKA_VERSION, LIFECYCLE_KAFKA_CACHE.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 <data-dir> <port> [controller-port]" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${LIFECYCLE_KAFKA_VERSION:-4.3.1}"
cache="${LIFECYCLE_KAFKA_CACHE:-$HOME/.cache/lifecycle/apache-kafka-$version}"
port="$2"
cport="${3:-$((port + 1))}"
mkdir -p "$1"
data="$(cd "$1" && pwd)"

# (a) Fetch the broker's runtime jars once.
if [[ ! -f "$cache/libs/kafka_2.13-$version.jar" ]]; then
  echo "fetching Apache Kafka $version jars into $cache/libs" >&2
  mvn -q -B -f "$here/pom.xml" -Dkafka.version="$version" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$cache/libs.tmp" >&2
  rm -rf "$cache/libs" && mv "$cache/libs.tmp" "$cache/libs"
fi

# (b) Configuration: single KRaft node, small and test-friendly.
cat >"$data/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data/logs
num.partitions=6
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
cat >"$data/log4j2.properties" <<EOF
appender.file.type=File
appender.file.name=file
appender.file.fileName=$data/kafka.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
logger.kafka.name=kafka
logger.kafka.level=INFO
logger.apache.name=org.apache.kafka
logger.apache.level=INFO
logger.state.name=state.change.logger
logger.state.level=WARN
EOF

java_opts=(-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$data/log4j2.properties" -cp "$cache/libs/*")

# (c) Format the storage once, with a random cluster id (22 chars of base64url).
if [[ ! -f "$data/logs/meta.properties" ]]; then
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' 'AB' | cut -c1-22)"
  java "${java_opts[@]}" kafka.tools.StorageTool format \
    --config "$data/server.properties" --cluster-id "$cluster_id" --ignore-formatted >&2
fi

# (d) Become the broker.
exec java "${java_opts[@]}" kafka.Kafka "$data/server.properties"
