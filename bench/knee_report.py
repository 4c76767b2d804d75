"""The knee phase's lines in the bench table (bench/knee.py measures; bench/report.py prints)."""

from __future__ import annotations

from cpu import top, verdict

GROUPS = ("stage-engine", "messaging", "loyalty")


def _q(found: dict, group: str) -> str:
    q = found["post_to_effect_ms"].get(group, {})
    return f"{_ms(q.get('p50'))}/{_ms(q.get('p99'))} n{q.get('touchpoints', 0)}"


def _all_steps(fig: dict) -> list[dict]:
    extra = [fig[name] for name in ("profiled_repeat", "at_goal_rate") if fig.get(name)]
    return [*fig["steps"], *fig["at_fraction_of_knee"].values(), *extra]


def _hist(s: dict, group: str, name: str, suffix: str = "") -> str:
    found = s.get("consumer_timings", {}).get(group, {}).get(f"{name}:{group}{suffix}")
    return f"{found['mean_ms']:,.0f}/{found['p99_le_ms']:,.0f}" if found else "-"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def step_line(s: dict) -> str:
    lag = " ".join(f"{s['lag_start'][g]}->{s['lag_end'][g]}" for g in GROUPS)
    verdict_text = "meets goal" if s["meets_goal"] else "holds, p99 > 1 s" if s["holds"] else "falls behind"
    return (f"{_rate(s['offered_events_per_s']):>8} {_rate(s['accepted_events_per_s']):>9}  {lag:<26} "
            f"{_q(s, 'stage-engine'):>18} {_q(s, 'loyalty'):>18} {_q(s, 'messaging'):>18}  {verdict_text}")


def rows(fig: dict, cpu_count: int) -> list[str]:
    ratio = fig["ratio"]
    out = [f"pipeline knee: {_ms(fig['knee_events_per_s'])} events/s "
           f"= {ratio['knee_to_producer'] or '-'} x producer ({_ms(fig['baseline_producer_msgs_per_s'])} msgs/s); "
           f"sustained (lag flat, p99 aside) {_ms(fig['sustained_events_per_s'])} events/s "
           f"= {ratio['sustained_to_producer'] or '-'} x producer   (goal: {fig['goal']})",
           f"  open loop through ingest /v1/batch, {fig['params']['knee_step_s']:g} s per step; "
           "POST -> first effect p50/p99 ms (n touchpoints) from the services' own timestamps",
           f"  {'offered':>8} {'accepted':>9}  {'lag start->end stage/msg/loy':<26} {'stage':>18} {'loyalty':>18} "
           f"{'message':>18}  verdict"]
    out += ["  " + step_line(s) for s in fig["steps"]]
    for name, s in fig["at_fraction_of_knee"].items():
        out.append(f"  at {name} of the knee:")
        out.append("  " + step_line(s))
    if profiled := fig.get("profiled_repeat"):
        out.append("  profiled repeat of the first step that fell behind (py-spy on each consumer; figures apart):")
        out.append("  " + step_line(profiled))
        out += [f"    {name}: {found.get('summary_text') or found.get('error')}"
                for name, found in profiled.get("profiles", {}).items()]
    if at_goal := fig.get("at_goal_rate"):
        out.append("  at the goal's rate (the stage engine's figure; messaging and loyalty were not drained first, "
                   "their figures partial):")
        out.append("  " + step_line(at_goal))
    out.append("  the consumers' own histograms per step (mean ms; p99 as a bucket bound): record age at poll | "
               "batch apply")
    for s in _all_steps(fig):
        out.append(f"  {_rate(s['offered_events_per_s']):>8}  " + "  ".join(
            f"{g} {_hist(s, g, 'record_age_at_poll')} | {_hist(s, g, 'batch', ':apply')}" for g in GROUPS))
    out.append("  cores per process while offered (not-ours = other load on the box):")
    for s in _all_steps(fig):
        cores = s["cpu_cores"]
        ours = {role: value for role, value in cores.items() if role != "not-ours"}
        out.append(f"  {_rate(s['offered_events_per_s']):>8}  {top(ours, 7)}  not-ours={cores.get('not-ours', 0):.2f}"
                   f"  | {verdict(cores, cpu_count=cpu_count)}")
    idle = fig.get("idle_cpu_cores") or {}
    if idle:
        ours = {role: value for role, value in idle.items() if role not in ("not-ours", "bench") and value >= 0.005}
        out.append(f"  idle (nothing offered, quiet pipeline): {top(ours, 8)}  total={sum(ours.values()):.2f} cores"
                   f"  not-ours={idle.get('not-ours', 0):.2f}")
    out.append("  CPU per accepted touchpoint above idle, ms of one core per process ((cores - idle) x 1000 / accepted "
               f"events/s), and the cores {GOAL_RATE:,} events/s would take at that cost (idle included; a consumer "
               "behind spent less than its share: then a floor):")
    for s in _all_steps(fig):
        per_event = cpu_per_event_ms(s, idle)
        if per_event:
            total = sum(per_event.values())
            needed = total * GOAL_RATE / 1000 + sum(v for role, v in idle.items() if role not in ("not-ours", "bench"))
            out.append(f"  {_rate(s['offered_events_per_s']):>8}  " + " ".join(
                f"{role}={ms:.3f}" for role, ms in per_event.items()) +
                f"  total={total:.3f} ms -> {needed:.1f} cores at {GOAL_RATE:,}/s")
    return out


GOAL_RATE = 10_000  # the knee goal, events/s


def cpu_per_event_ms(step: dict, idle: dict[str, float]) -> dict[str, float]:
    """Each of our processes' CPU above its idle use per accepted event in the step (ms of one core), largest
    first; processes that used nothing left out."""
    accepted = step.get("accepted_events_per_s") or 0
    if accepted <= 0:
        return {}
    ours = {role: max(0.0, cores - idle.get(role, 0.0)) * 1000 / accepted
            for role, cores in step["cpu_cores"].items() if role not in ("not-ours", "bench") and cores >= 0.005}
    return dict(sorted(ours.items(), key=lambda item: -item[1]))
