"""Resource plans against M/M/c, checked in a discrete-event simulation of the simulated load."""

from __future__ import annotations

import pytest

from flywheel.learners.capacity import AgentLoad, highest_rate, p95, plan
from flywheel.sim import queueing

LOAD = AgentLoad(mean_rate=5.0, peak_rate=20.0, mean_service_s=1.0, slots=4)
TARGET_S = 4.0


@pytest.mark.parametrize("service", ["exponential", "lognormal"])
def test_the_plan_meets_the_p95_target_under_simulated_load(service):
    chosen = plan(LOAD, TARGET_S)
    at_peak = queueing.response_times(LOAD.peak_rate, LOAD.mean_service_s, chosen.max_replicas * LOAD.slots,
                                      40000, seed=3, service=service)
    at_mean = queueing.response_times(LOAD.mean_rate, LOAD.mean_service_s, chosen.min_replicas * LOAD.slots,
                                      20000, seed=4, service=service)
    assert queueing.p95(at_peak) <= TARGET_S and queueing.p95(at_mean) <= TARGET_S


def test_the_plan_is_the_cheapest_one_replica_fewer_misses_the_target():
    chosen = plan(LOAD, TARGET_S)
    assert (chosen.min_replicas, chosen.max_replicas) == (2, 6)
    fewer = queueing.response_times(LOAD.peak_rate, LOAD.mean_service_s, (chosen.max_replicas - 1) * LOAD.slots,
                                    40000, seed=3)
    assert queueing.p95(fewer) > TARGET_S
    fewer = queueing.response_times(LOAD.mean_rate, LOAD.mean_service_s, (chosen.min_replicas - 1) * LOAD.slots,
                                    20000, seed=4)
    assert queueing.p95(fewer) > TARGET_S


def test_the_model_agrees_with_the_simulation():
    for servers, rate in [(1, 0.7), (4, 3.0), (12, 10.0)]:
        simulated = queueing.p95(queueing.response_times(rate, 1.0, servers, 60000, seed=servers))
        assert simulated == pytest.approx(p95(rate, 1.0, servers), rel=0.05), (servers, rate)


def test_the_autoscaling_target_is_the_load_per_replica_at_the_highest_rate_within_target():
    chosen = plan(LOAD, TARGET_S)
    rate = highest_rate(chosen.min_replicas, LOAD, TARGET_S)
    times = queueing.response_times(rate, LOAD.mean_service_s, chosen.min_replicas * LOAD.slots, 60000, seed=5)
    assert queueing.p95(times) == pytest.approx(TARGET_S, rel=0.05)
    # Little's law: requests in flight per replica at that rate
    assert chosen.target_ongoing_requests == pytest.approx(rate * times.mean() / chosen.min_replicas, rel=0.05)
    assert chosen.resources("fast") == {
        "fast.min_replicas": 2.0, "fast.max_replicas": 6.0,
        "fast.target_ongoing_requests": round(chosen.target_ongoing_requests, 3),
    }


def test_a_service_time_beyond_the_target_has_no_plan():
    with pytest.raises(ValueError, match="service time alone"):
        plan(AgentLoad(mean_rate=1.0, peak_rate=1.0, mean_service_s=3.0, slots=1), TARGET_S)
