"""CPU accounting per phase: how many cores each side (the load generator, each service, the
broker, PostgreSQL) burned, read from the processes' own CPU times with psutil.

A Python service runs one event loop, so at ~1 core it is CPU-bound whatever the machine has
left; Tansu and PostgreSQL can use several cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import contextmanager

import psutil

Roles = Callable[[], dict[str, list[int]]]  # role -> pids (a pid's descendants count too)
SINGLE_LOOP = ("bench", "ingest", "ingest-sink", "null-app", "stage-engine", "messaging", "loyalty")


def _loops(cores: dict[str, float]) -> list[str]:
    """Roles that are one event loop: the single-process ones, each worker ("name[w0]") and each further
    instance ("stage-engine-2")."""
    return [role for role in cores if role in SINGLE_LOOP or "[w" in role
            or (role.rpartition("-")[0] in SINGLE_LOOP and role.rpartition("-")[2].isdigit())]


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


class CpuMeter:
    def __init__(self, roles: Roles) -> None:
        self._roles = roles

    def snapshot(self) -> dict:
        """{"t": monotonic seconds, "pids": {pid: (role, cpu seconds, create time)}}."""
        pids: dict[int, tuple[str, float, float]] = {}
        for role, roots in self._roles().items():
            for root in roots:
                try:
                    top = psutil.Process(root)
                    family = [top] if root == os.getpid() else [top, *top.children(recursive=True)]
                except psutil.Error:
                    continue
                for proc in family:
                    try:
                        pids[proc.pid] = (role, _cpu_seconds(proc), proc.create_time())
                    except psutil.Error:
                        continue
        system = psutil.cpu_times()
        busy = system.user + system.nice + system.system + getattr(system, "irq", 0) + getattr(system, "softirq", 0)
        return {"t": time.monotonic(), "pids": pids, "busy": busy}

    @staticmethod
    def cores(start: dict, end: dict) -> dict[str, float]:
        """Cores used per role between two snapshots (processes born in between count whole)."""
        wall = max(end["t"] - start["t"], 1e-6)
        used: dict[str, float] = {}
        for pid, (role, cpu, created) in end["pids"].items():
            before = start["pids"].get(pid)
            base = before[1] if before and before[2] == created else 0.0
            used[role] = used.get(role, 0.0) + max(0.0, cpu - base)
        # Whatever else ran on the box meanwhile (other people's tests, ...): it skews the figures.
        used["not-ours"] = max(0.0, end["busy"] - start["busy"] - sum(used.values()))
        return {role: round(seconds / wall, 2) for role, seconds in sorted(used.items(), key=lambda i: -i[1])}


def verdict(cores: dict[str, float], *, cpu_count: int) -> str:
    """A one-line reading of `cores`: saturated machine, a pegged event loop, or neither."""
    if not cores:
        return "no CPU data"
    total = sum(cores.values())
    notes = []
    pegged = [f"{role} ({cores[role]:.2f})" for role in _loops(cores) if cores[role] >= 0.9]
    if pegged:
        notes.append(" and ".join(pegged) + " CPU-bound: ~1 core is all one event loop gets")
    nearly = [f"{role} ({cores[role]:.2f})" for role in _loops(cores) if 0.7 <= cores[role] < 0.9]
    if nearly:
        notes.append(" and ".join(nearly) + " mostly CPU-bound (the rest of its time it awaits I/O)")
    if total >= 0.85 * cpu_count:
        notes.append(f"machine saturated ({total:.2f}/{cpu_count} cores)")
    if cores.get("not-ours", 0) >= 0.25:
        notes.append(f"other load on the box: {cores['not-ours']:.2f} cores")
    if not notes:
        top = max((role for role in cores if role != "not-ours"), key=cores.get)
        notes.append(f"no side CPU-bound ({total:.2f}/{cpu_count} cores; top {top} {cores[top]:.2f})")
    return "; ".join(notes)


def top(cores: dict[str, float], count: int = 4) -> str:
    return " ".join(f"{role}={value:.2f}" for role, value in list(cores.items())[:count])


class CpuWatch:
    """Per phase: the wall time, the CPU the machine spent (in cores busy) and how much of it was this run's
    (this process and its descendants: PostgreSQL, the service, the scoring process) - whatever else runs on
    the machine (other test runs) competes for the same cores."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}

    @staticmethod
    def _ours() -> float:
        total = 0.0
        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    @staticmethod
    def _machine() -> tuple[float, float]:
        times = psutil.cpu_times()
        busy = times.user + times.nice + times.system + getattr(times, "irq", 0) + getattr(times, "softirq", 0)
        return busy, getattr(times, "steal", 0.0)

    @contextmanager
    def phase(self, name: str):
        started, ours, (busy, steal) = time.perf_counter(), self._ours(), self._machine()
        try:
            yield
        finally:
            wall = time.perf_counter() - started
            ours, (busy, steal) = self._ours() - ours, [b - a for a, b in zip((busy, steal), self._machine(),
                                                                               strict=True)]
            self.phases[name] = {"wall_s": round(wall, 1), "machine_busy_cores": round(busy / wall, 2),
                                 "this_run_cores": round(ours / wall, 2),
                                 "other_processes_cores": round(max(0.0, busy - ours) / wall, 2),
                                 "steal_cores": round(steal / wall, 2),
                                 "load_average_1m_at_end": round(os.getloadavg()[0], 2)}


class PhaseCpu:
    """Called with "start"/"end" around a timed part; keeps the cores each process used. `on_start`
    runs first at "start" (e.g. starting py-spy, counting connections per worker)."""

    def __init__(self, meter: CpuMeter, on_start: Callable[[], None] | None = None) -> None:
        self.meter, self.begin, self.cores, self.on_start = meter, None, {}, on_start

    def __call__(self, what: str) -> None:
        if what == "start":
            if self.on_start:
                self.on_start()
            self.begin = self.meter.snapshot()
        elif self.begin is not None:
            self.cores = CpuMeter.cores(self.begin, self.meter.snapshot())
