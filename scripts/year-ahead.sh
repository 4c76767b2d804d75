#!/usr/bin/env bash
# The unit and integration suites with every process's clock a year ahead (Python, PostgreSQL and the
# tests alike), proving that no test depends on the wall-clock date:
#   scripts/year-ahead.sh [pytest args...]      (no path given: tests/unit tests/integration)
# Uses Debian's faketime (LD_PRELOAD of libfaketime), installed here when missing. The embedded broker is
# a static binary, so its own clock stays real: only broker-side timestamps are today's, which nothing
# compares with. LIFECYCLE_CLOCK_OFFSET overrides the offset (faketime's -f syntax, e.g. "+730d").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v faketime >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "faketime is not installed: apt-get install faketime (Debian/Ubuntu), then run this again" >&2
    exit 1
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends faketime >/dev/null
fi
offset="${LIFECYCLE_CLOCK_OFFSET:-+365d}"
echo "clock: $(faketime -f "$offset" date -u +%FT%TZ) (real $(date -u +%FT%TZ))" >&2
cd "$root"
paths=(tests/unit tests/integration)
for arg in "$@"; do case "$arg" in -*) ;; *) paths=() ;; esac; done
# Tests marked real_timers are left out: PostgreSQL's deadlock detector runs on a timer that libfaketime
# stops (a deadlock is then never broken); they read no date.
exec faketime -f "$offset" python3 dev.py test -m "not real_timers" "${paths[@]}" "$@"
