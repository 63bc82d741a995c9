"""A resource plan checked event by event: it meets the p95 target under the simulated load."""

from __future__ import annotations

from flywheel.eval.resource_check import simulate_plan
from flywheel.learners.capacity import AgentLoad
from flywheel.learners.resource_tune import AgentDemand, ResourcePlan, Scaling, assess, closed_form_point, scaling_of

DEMANDS = [
    AgentDemand("fast", AgentLoad(mean_rate=5.0, peak_rate=20.0, mean_service_s=1.0, slots=4), target_s=4.0),
    AgentDemand("strong", AgentLoad(mean_rate=2.0, peak_rate=6.0, mean_service_s=2.2, slots=2), target_s=8.0,
                service_cv=0.6),  # lognormal service times of the measured spread
]


def _plan(scalings: dict[str, Scaling]) -> ResourcePlan:
    return ResourcePlan(scalings=scalings, assessments={d.agent: assess(d, scalings[d.agent]) for d in DEMANDS},
                        start_cost=0.0, trials=1, seconds=0.0)


def test_the_plan_meets_p95_in_the_simulation_and_one_replica_fewer_at_peak_does_not():
    point = closed_form_point(DEMANDS)
    planned = _plan({d.agent: scaling_of(d.agent, point) for d in DEMANDS})
    checked = simulate_plan(DEMANDS, planned, requests=20000, seed=1)
    assert [c.agent for c in checked] == ["fast", "strong"]
    assert all(c.meets for c in checked), checked
    assert all(c.peak_replicas > c.mean_replicas for c in checked)
    fast = planned.scalings["fast"]
    short = _plan({**planned.scalings, "fast": Scaling(fast.min_replicas, fast.max_replicas - 1,
                                                       fast.target_ongoing_requests)})
    [missed, _] = simulate_plan(DEMANDS, short, requests=20000, seed=1)
    assert not missed.meets and missed.peak_p95_s > 4.0
