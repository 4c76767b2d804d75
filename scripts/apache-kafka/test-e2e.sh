#!/usr/bin/env bash
# Run the end-to-end tests against Apache Kafka itself (KRaft, idempotent producer on).
#   scripts/apache-kafka/test-e2e.sh [pytest args...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d /tmp/lifecycle-kafka.XXXXXX)"
# Two ports the system hands out (held together, so they differ): the broker's and the controller's.
# Not port+1, which another process may hold: the broker then dies at start.
read -r port cport < <(python3 -c '
import socket
held = [socket.socket() for _ in range(2)]
for s in held: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))')
"$root/scripts/apache-kafka/start.sh" "$work" "$port" "$cport" >"$work/start.log" 2>&1 &
kafka_pid=$!
stop_kafka() {
  kill "$kafka_pid" 2>/dev/null || return 0
  for _ in $(seq 1 40); do kill -0 "$kafka_pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$kafka_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap stop_kafka EXIT
for _ in $(seq 1 600); do  # the first run also fetches the jars
  if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  kill -0 "$kafka_pid" 2>/dev/null || { cat "$work/start.log"; tail -40 "$work/kafka.log" 2>/dev/null
                                        echo "Apache Kafka did not start" >&2; exit 1; }
  sleep 0.5
done
echo "Apache Kafka on 127.0.0.1:$port" >&2
cd "$root"
LIFECYCLE_TEST_KAFKA_BOOTSTRAP="127.0.0.1:$port" python3 dev.py test tests/e2e "$@"
