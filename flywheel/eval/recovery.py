"""Recovery after an abrupt change: how many runs until the router's route shares match the oracle's.

Used by the simulation benchmark (flywheel.eval.bench_sim, whose docstring defines
recovery_runs): N is the tick of the scenario's first abrupt event; a workflow is
affected when the oracle's shares moved by at least `tolerance` across N; it has
recovered at the first run from N after which the last `window` runs' shares of the
system and of the oracle differ by at most `tolerance` for every arm.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from flywheel.sim import Scenario

ABRUPT = ("degrade", "outage", "add")
SHIFT_RUNS = 1000  # runs each side of N that decide whether a workflow is affected


def _shares_gap(system: Counter, oracle: Counter, n: int) -> float:
    return max(abs(system[a] - oracle[a]) for a in set(system) | set(oracle)) / n


def route_recovery(
    sc: Scenario, routes: dict[str, list[tuple[int, str, str]]], window: int, tolerance: float
) -> dict[str, Any] | None:
    """Runs until the system's route shares recover after the scenario's first abrupt event.

    `routes[wf]` is that workflow's (tick, system arm, oracle arm) per run, in order;
    the definition is flywheel.eval.bench_sim's (recovery_runs).
    """
    abrupt = sorted((e for e in sc.events if e.kind in ABRUPT), key=lambda e: e.at_run)
    if not abrupt:
        return None
    first = abrupt[0]
    at = first.at_run
    per_wf: dict[str, Any] = {}
    for wf, seq in routes.items():
        before = [b for t, _, b in seq if t < at][-SHIFT_RUNS:]
        after_all = [(t, a, b) for t, a, b in seq if t >= at]
        after = [b for _, _, b in after_all[:SHIFT_RUNS]]
        if not before or len(after_all) < window:
            continue
        cb, ca = Counter(before), Counter(after)
        shift = max(abs(cb[a] / len(before) - ca[a] / len(after)) for a in set(cb) | set(ca))
        pre = seq[max(0, len(seq) - len(after_all) - window): len(seq) - len(after_all)]
        pre_gap = _shares_gap(Counter(a for _, a, _ in pre), Counter(b for _, _, b in pre), max(1, len(pre)))
        sys_w: Counter = Counter()
        ora_w: Counter = Counter()
        q: deque[tuple[str, str]] = deque()
        found: tuple[int, int] | None = None
        for j, (t, a, b) in enumerate(after_all, start=1):
            q.append((a, b))
            sys_w[a] += 1
            ora_w[b] += 1
            if len(q) > window:
                a0, b0 = q.popleft()
                sys_w[a0] -= 1
                ora_w[b0] -= 1
            if j >= window and _shares_gap(sys_w, ora_w, window) <= tolerance:
                found = (j, t - at + 1)
                break
        per_wf[wf] = {"oracle_shift": round(shift, 4), "affected": shift >= tolerance, "gap_before": round(pre_gap, 4),
                      "runs": found[0] if found else None, "ticks": found[1] if found else None}
    if not per_wf:  # the change comes after the last run (or too close to it to judge)
        return None
    affected = [wf for wf, r in per_wf.items() if r["affected"]]
    if not affected and per_wf:
        affected = [max(per_wf, key=lambda wf: per_wf[wf]["oracle_shift"])]
    runs = [per_wf[wf]["runs"] for wf in affected]
    recovered = bool(runs) and all(r is not None for r in runs)
    return {
        "event": {"kind": first.kind, "model": first.model, "at_run": at},
        "window": window,
        "tolerance": tolerance,
        "affected": affected,
        "recovered": recovered,
        "runs": max(runs) if recovered else None,  # type: ignore[type-var]
        "workflows": per_wf,
    }
