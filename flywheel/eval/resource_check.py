"""The check of a resource plan: each agent's queue simulated event by event under its observed load.

For each agent, flywheel.sim.queueing simulates the replicas the autoscaler runs at
the mean rate and at the peak rate (the plan's assessment), with service times of
the observed mean: lognormal of the observed spread where the ledger measured one,
else exponential (the planning model's). The simulated p95 at each rate is set
against the workflow's target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from flywheel.learners.resource_tune import AgentDemand, ResourcePlan
from flywheel.sim import queueing


@dataclass(frozen=True, slots=True)
class SimulatedAgent:
    """One agent's plan in the discrete-event simulation."""

    agent: str
    target_s: float
    mean_replicas: int
    peak_replicas: int
    mean_p95_s: float
    peak_p95_s: float

    @property
    def meets(self) -> bool:
        return self.mean_p95_s <= self.target_s and self.peak_p95_s <= self.target_s


def simulate_plan(demands: Sequence[AgentDemand], result: ResourcePlan, *, requests: int = 20000,
                  seed: int = 0) -> list[SimulatedAgent]:
    """The simulated p95 of each agent at its mean and peak rates, with the replicas the plan runs there."""
    out = []
    for i, d in enumerate(demands):
        a = result.assessments[d.agent]
        kind, sigma = "exponential", 0.5
        if d.service_cv is not None and d.service_cv > 0:
            kind, sigma = "lognormal", math.sqrt(math.log1p(d.service_cv**2))
        tails = []
        for j, (rate, replicas) in enumerate([(d.load.mean_rate, a.mean_replicas), (d.load.peak_rate, a.peak_replicas)]):
            if rate <= 0:
                tails.append(0.0)
                continue
            times = queueing.response_times(rate, d.load.mean_service_s, replicas * d.load.slots, requests,
                                            seed=seed + 2 * i + j, service=kind, sigma=sigma)
            tails.append(queueing.p95(times))
        out.append(SimulatedAgent(agent=d.agent, target_s=d.target_s, mean_replicas=a.mean_replicas,
                                  peak_replicas=a.peak_replicas, mean_p95_s=tails[0], peak_p95_s=tails[1]))
    return out
