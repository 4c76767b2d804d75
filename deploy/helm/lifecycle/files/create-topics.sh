#!/bin/sh
# The topic Job (apache/kafka image): creates each topic with its partition count, replication factor
# REPLICATION_FACTOR and min.insync.replicas MIN_INSYNC_REPLICAS; on a topic that already exists it sets
# min.insync.replicas and checks the partition count. It never changes a partition count (that would move
# customers to other partitions while events are in flight): a mismatch fails the Job, naming the topic.
# TOPICS: space-separated name:partitions pairs. KAFKA_BIN: where the Kafka tools are (the image's by default).
set -eu
bin=${KAFKA_BIN:-/opt/kafka/bin}
failed=0
for spec in $TOPICS; do
  name=${spec%%:*}
  partitions=${spec##*:}
  "$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP_SERVERS" --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor "$REPLICATION_FACTOR" \
    --config "min.insync.replicas=$MIN_INSYNC_REPLICAS"
  "$bin/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP_SERVERS" --alter --entity-type topics \
    --entity-name "$name" --add-config "min.insync.replicas=$MIN_INSYNC_REPLICAS"
  actual=$("$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP_SERVERS" --describe --topic "$name" \
    | sed -n 's/.*PartitionCount:[[:space:]]*\([0-9]*\).*/\1/p' | head -n 1)
  if [ "$actual" != "$partitions" ]; then
    echo "topic $name has $actual partitions, values say $partitions: left as it is (see docs/kubernetes.md)" >&2
    failed=1
  else
    echo "topic $name: $partitions partitions, replication $REPLICATION_FACTOR, min.insync.replicas $MIN_INSYNC_REPLICAS"
  fi
done
exit "$failed"
