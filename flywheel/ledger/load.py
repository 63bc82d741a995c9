"""The load each agent carries, from the ledger: arrival rates and service times, by SQL.

An agent step of a run (`steps.kind = 'agent'`) is one request to the agent its
output names (`output.agent`, the arm the route step chose): it arrives at the
step's `started_at` and holds the agent until `ended_at` (its service time as the
workflow saw it: the call, plus any wait in the deployment's queue). Per workflow
and agent, two aggregate queries give the requests, the mean arrival rate over the
span they cover, the peak rate (the busiest `bucket_s` window), and the service
time's mean, spread and maximum; no step is loaded. The runs are selected on their
indexed (workflow, created_at) range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from flywheel.ledger.dashboard import time_bucket
from flywheel.ledger.engine import read_transaction
from flywheel.ledger.tables import runs, steps


@dataclass(frozen=True, slots=True)
class AgentLoadStats:
    """What one workflow asked of one agent in a window: requests, rates (per s) and service times (s)."""

    workflow: str
    agent: str
    requests: int
    first_at: float
    last_at: float
    mean_rate: float
    peak_rate: float
    mean_service_s: float
    std_service_s: float
    max_service_s: float


def agent_loads(engine: Engine, *, since: float, until: float, bucket_s: float = 60.0,
                workflow: str | None = None) -> list[AgentLoadStats]:
    """Per (workflow, agent), the load of the agent steps of the runs created in [since, until).

    The mean rate is the requests over the span from the first to the last arrival (at
    least `bucket_s`); the peak rate is the busiest bucket's requests / `bucket_s`
    (at least the mean). Ordered by workflow, then agent."""
    agent = steps.c.output["agent"].as_string()
    duration = steps.c.ended_at - steps.c.started_at
    where = [runs.c.created_at >= since, runs.c.created_at < until, steps.c.kind == "agent",
             steps.c.ended_at.is_not(None)]
    if workflow is not None:
        where.append(runs.c.workflow == workflow)
    joined = steps.join(runs, runs.c.run_id == steps.c.run_id)
    with read_transaction(engine) as c:
        totals = c.execute(
            select(runs.c.workflow, agent.label("agent"), func.count(), func.min(steps.c.started_at),
                   func.max(steps.c.started_at), func.avg(duration), func.avg(duration * duration),
                   func.max(duration))
            .select_from(joined).where(*where).group_by(runs.c.workflow, agent)
        ).all()
        bucket = time_bucket(c, steps.c.started_at, since, bucket_s).label("b")
        per_bucket = (
            select(runs.c.workflow.label("workflow"), agent.label("agent"), bucket, func.count().label("n"))
            .select_from(joined).where(*where).group_by(runs.c.workflow, agent, bucket).subquery()
        )
        busiest = {(wf, a): int(n) for wf, a, n in c.execute(
            select(per_bucket.c.workflow, per_bucket.c.agent, func.max(per_bucket.c.n))
            .group_by(per_bucket.c.workflow, per_bucket.c.agent))}
    out = []
    for wf, a, n, first, last, mean_s, mean_sq, most in totals:
        if a is None:
            continue
        n, first, last, mean_s = int(n), float(first), float(last), float(mean_s)
        mean_rate = n / max(last - first, bucket_s)
        out.append(AgentLoadStats(
            workflow=wf, agent=a, requests=n, first_at=first, last_at=last, mean_rate=mean_rate,
            peak_rate=max(mean_rate, busiest.get((wf, a), 0) / bucket_s), mean_service_s=mean_s,
            std_service_s=math.sqrt(max(0.0, float(mean_sq) - mean_s * mean_s)), max_service_s=float(most),
        ))
    return sorted(out, key=lambda s: (s.workflow, s.agent))
