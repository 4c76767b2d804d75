"""`--profile`: py-spy on a service process while a load phase runs, and a text summary of it.

py-spy samples the process's Python stacks (`record --nonblocking --format raw --function
--full-filenames`; idle threads, i.e. an event loop waiting in epoll, are not recorded, so the
samples are where the CPU went). Non-blocking on purpose: in the default mode py-spy stops the
process with ptrace for each sample, the stop lands at a syscall boundary, and the profile then
over-weights syscalls - measured here, 22% of the batch phase "in" aiokafka's create_future ->
asyncio get_running_loop -> getpid(), which drops out of the top 15 when the same load is sampled
without stopping the process (and the profiled rate fell from ~38k to ~27k events/s). The price:
a stack read while it changes can come out truncated, so inclusive shares are lower bounds. The raw
output is collapsed stacks, one `frame;frame;...;leaf count` a line (flamegraph.pl and
speedscope.app read it); the summary aggregates it:

  self:      samples per leaf frame (the function on CPU), top N
  packages:  self samples per package of the leaf (aiokafka, starlette, pydantic, json, ...)
  ours:      inclusive samples per frame in our own code (`lifecycle_*`), counted once per stack
             (without the entry frames every stack has: `<module>`, cli main/serve)
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def pyspy_binary() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Recorder:
    """py-spy record on `pid` for `duration_s`, started by `start()`, collected by `finish()`."""

    def __init__(self, pid: int, out: Path, *, rate: int, duration_s: float) -> None:
        self.pid, self.out, self.rate, self.duration_s = pid, out, rate, duration_s
        self.process: subprocess.Popen | None = None
        self.error: str | None = None

    def start(self) -> int | None:
        binary = pyspy_binary()
        if binary is None:
            self.error = "py-spy not found (neither next to this Python nor on PATH)"
            return None
        self.out.parent.mkdir(parents=True, exist_ok=True)
        command = [binary, "record", "--pid", str(self.pid), "--rate", str(self.rate),
                   "--duration", str(math.ceil(self.duration_s)), "--nonblocking", "--format", "raw", "--function",
                   "--full-filenames", "--output", str(self.out)]
        self.command = command
        try:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as error:
            self.error = f"py-spy did not start: {error!r}"
            return None
        return self.process.pid

    def finish(self, timeout_s: float = 30) -> dict:
        if self.process is None:
            return {"error": self.error}
        try:
            output, _ = self.process.communicate(timeout=self.duration_s + timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        result = {"command": " ".join(self.command), "returncode": self.process.returncode,
                  "py_spy_output": output.strip()[-2000:]}
        if self.process.returncode != 0 or not self.out.exists():
            result["error"] = f"py-spy exited {self.process.returncode}: {output.strip()[-500:]}"
        return result


def _short(frame: str) -> str:
    """`func (path:line)` with the path cut to its package: `func (aiokafka/producer/producer.py:321)`."""
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("/site-packages/", "/src/", "/lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "/lib/python3.":
                file = "stdlib/" + file.split("/", 1)[-1]
            break
    return f"{match['func']} ({file}{':' + match['line'] if match['line'] else ''})"


def _package(short_frame: str) -> str:
    match = FRAME.match(short_frame)
    file = match["file"] if match else short_frame
    if file.startswith("stdlib/"):
        parts = file.split("/")
        return "stdlib:" + (parts[1].removesuffix(".py") if len(parts) > 1 else "?")
    return file.split("/", 1)[0].removesuffix(".py") if "/" in file else file


def summarize(raw: Path, *, top: int = 15) -> dict:
    own, leaf, packages, total = Counter(), Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        total += n
        leaf[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for frame in set(frames):
            if "lifecycle_" in frame:
                own[frame] += n

    def ranked(counter: Counter, limit: int) -> list[dict]:
        return [{"frame": frame, "samples": n, "pct": round(100 * n / total, 1) if total else None}
                for frame, n in counter.most_common(limit)]

    # The process's entry (`<module>`, cli main/serve) is on every complete stack: it says nothing.
    entry = [frame for frame in own if frame.startswith("<module> (") or "lifecycle_shared/cli.py" in frame]
    for frame in entry:
        del own[frame]
    return {"samples": total, "self_top": ranked(leaf, top), "self_by_package": ranked(packages, 12),
            "ours_inclusive_top": ranked(own, top), "ours_on_every_stack": entry}


def render(name: str, summary: dict, *, expected_samples: int | None = None) -> str:
    busy = (f", {summary['samples'] / expected_samples:.0%} of the {expected_samples:,} samples a fully busy "
            "thread would give" if expected_samples else "")
    lines = [f"py-spy {name}: {summary['samples']:,} samples{busy}", "", "  top self-time frames:"]
    lines += [f"    {row['pct']:5.1f}%  {row['frame']}" for row in summary["self_top"]]
    lines += ["", "  self time by package:"]
    lines += [f"    {row['pct']:5.1f}%  {row['frame']}" for row in summary["self_by_package"]]
    lines += ["", "  inclusive, our code (lifecycle_*):"]
    lines += [f"    {row['pct']:5.1f}%  {row['frame']}" for row in summary["ours_inclusive_top"]]
    return "\n".join(lines)
