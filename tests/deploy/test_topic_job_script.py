"""The topic Job's script (deploy/helm/lifecycle/files/create-topics.sh), run with the environment the chart renders
for it and stand-ins for the Kafka tools that keep topics in a folder: it creates what is missing with the production
settings, sets min.insync.replicas on what exists, and refuses (never changes) a different partition count."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
CHART = ROOT / "deploy" / "helm" / "lifecycle"
SCRIPT = CHART / "files" / "create-topics.sh"

# Stand-ins: state/<topic> holds its partition count; every call is logged.
KAFKA_TOPICS = """#!/bin/sh
echo "kafka-topics $*" >> "$STATE/calls"
while [ $# -gt 0 ]; do
  case "$1" in --topic) topic=$2; shift;; --partitions) partitions=$2; shift;; --create) action=create;;
    --describe) action=describe;; --alter) action=alter;; esac
  shift
done
case "$action" in
  create) [ -f "$STATE/$topic" ] || echo "$partitions" > "$STATE/$topic";;
  describe) printf 'Topic: %s\\tTopicId: x\\tPartitionCount: %s\\tReplicationFactor: 3\\tConfigs: \\n' \\
              "$topic" "$(cat "$STATE/$topic")";;
  *) exit 3;;
esac
"""
KAFKA_CONFIGS = """#!/bin/sh
echo "kafka-configs $*" >> "$STATE/calls"
"""


@pytest.fixture
def kafka_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kafka-topics.sh", KAFKA_TOPICS), ("kafka-configs.sh", KAFKA_CONFIGS)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    (tmp_path / "state").mkdir()
    return bin_dir


@pytest.fixture(scope="module")
def job_env(helm: Path) -> dict[str, str]:
    result = subprocess.run([str(helm), "template", "lc", str(CHART), "--kube-version", "1.34.0"],
                            capture_output=True, text=True, check=True, timeout=120)
    (job,) = [o for o in yaml.safe_load_all(result.stdout)
              if o and o["kind"] == "Job" and o["metadata"]["name"].startswith("lc-topics-")]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "/scripts/create-topics.sh"]
    return {e["name"]: e["value"] for e in container["env"]}


def run(kafka_bin: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    state = kafka_bin.parent / "state"
    return subprocess.run(["/bin/sh", str(SCRIPT)], env={**env, "KAFKA_BIN": str(kafka_bin), "STATE": str(state),
                                                         "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=False, timeout=60)


def test_creates_every_topic_with_replication_3_and_min_insync_2(kafka_bin: Path, job_env: dict[str, str]):
    result = run(kafka_bin, job_env)
    assert result.returncode == 0, result.stderr
    state = kafka_bin.parent / "state"
    assert {p.name: p.read_text().strip() for p in state.iterdir() if p.name != "calls"} == {
        "touchpoints.v1": "12", "touchpoints.v1.dlq": "3",
        "stage-transitions.v1": "12", "stage-transitions.v1.dlq": "3",
        "loyalty-events.v1": "12", "loyalty-events.v1.dlq": "3"}
    calls = (state / "calls").read_text().splitlines()
    creates = [c for c in calls if "--create" in c]
    assert len(creates) == 6
    assert all("--if-not-exists" in c and "--replication-factor 3" in c and "--config min.insync.replicas=2" in c
               for c in creates)
    assert len([c for c in calls if c.startswith("kafka-configs") and "--add-config min.insync.replicas=2" in c]) == 6


def test_an_existing_topic_with_other_partitions_fails_the_job_and_is_left_alone(kafka_bin: Path,
                                                                                   job_env: dict[str, str]):
    state = kafka_bin.parent / "state"
    (state / "touchpoints.v1").write_text("6\n")
    result = run(kafka_bin, job_env)
    assert result.returncode == 1
    assert "topic touchpoints.v1 has 6 partitions, values say 12" in result.stderr
    assert (state / "touchpoints.v1").read_text().strip() == "6"
    assert not [c for c in (state / "calls").read_text().splitlines() if "--alter" in c and "kafka-topics" in c]
    # The other topics were still created, and the existing one still got its min.insync.replicas.
    assert (state / "stage-transitions.v1").read_text().strip() == "12"
    assert "--entity-name touchpoints.v1 --add-config min.insync.replicas=2" in (state / "calls").read_text()
