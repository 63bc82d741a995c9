"""Resource allocation: each agent deployment's autoscaling settings from its load, against M/M/c.

An agent deployment's replica serves `slots` requests at once (its concurrency:
API calls in flight, or a GPU model's batch slots), so n replicas are an
M/M/(n * slots) queue: Poisson arrivals at the observed rate, exponential service
times of the observed mean. Its response time (wait plus service) has a closed
form tail (Erlang C for the chance of waiting), so its p95 is found by bisection.
The plan for one agent:

- `min_replicas`: the fewest replicas whose p95 meets the target at the mean rate;
- `max_replicas`: the fewest that meet it at the peak rate (a replica costs the
  same whatever it does, so the fewest is the cheapest; p95 falls as replicas are
  added, so a scan from one finds it);
- `target_ongoing_requests`: the requests in flight per replica (Little's law)
  at the highest rate `min_replicas` replicas carry within the target: Serve's
  autoscaler adds a replica above it, before p95 passes the target.

flywheel.sim.queueing simulates the same queue event by event, to check a plan.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

TAIL = 0.05  # p95


@dataclass(frozen=True, slots=True)
class AgentLoad:
    """What an agent deployment is asked to carry: arrival rates (requests/s) and its service time."""

    mean_rate: float
    peak_rate: float
    mean_service_s: float
    slots: int = 1  # requests one replica serves at once


@dataclass(frozen=True, slots=True)
class AgentPlan:
    """An agent deployment's autoscaling settings, and the model's p95 at the peak rate."""

    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float
    peak_p95_s: float

    def resources(self, agent: str) -> dict[str, float]:
        """The plan as a proposal's `resources` entries (`<agent>.<setting>`)."""
        return {
            f"{agent}.min_replicas": float(self.min_replicas),
            f"{agent}.max_replicas": float(self.max_replicas),
            f"{agent}.target_ongoing_requests": round(self.target_ongoing_requests, 3),
        }


def erlang_c(servers: int, offered: float) -> float:
    """The chance an arrival waits in an M/M/c queue of `servers` with offered load λ/μ (< servers).

    >>> round(erlang_c(1, 0.5), 3), round(erlang_c(2, 1.0), 4)
    (0.5, 0.3333)
    """
    if offered <= 0:
        return 0.0
    b = 1.0  # Erlang B, by its stable recursion
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    rho = offered / servers
    return b / (1.0 - rho * (1.0 - b))


def response_tail(t: float, rate: float, service_rate: float, servers: int) -> float:
    """P(response time > t) in M/M/c: no wait (service only) or a wait then service."""
    theta = servers * service_rate - rate  # the rate the wait ends at
    c = erlang_c(servers, rate / service_rate)
    served = math.exp(-service_rate * t)
    if abs(theta - service_rate) < 1e-12:
        waited = (1.0 + service_rate * t) * served
    else:
        waited = (theta * served - service_rate * math.exp(-theta * t)) / (theta - service_rate)
    return (1.0 - c) * served + c * waited


def p95(rate: float, mean_service_s: float, servers: int) -> float:
    """The p95 response time (s) of M/M/`servers` at `rate`; inf when the queue is unstable.

    >>> round(p95(0.0, 1.0, 1), 3)  # no queue: the exponential service time's p95, ln 20
    2.996
    >>> p95(2.0, 1.0, 2)
    inf
    """
    mu = 1.0 / mean_service_s
    if rate >= servers * mu:
        return math.inf
    lo, hi = 0.0, mean_service_s
    while response_tail(hi, rate, mu, servers) > TAIL:
        hi *= 2.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if response_tail(mid, rate, mu, servers) > TAIL else (lo, mid)
    return hi


def replicas_for(rate: float, load: AgentLoad, target_s: float, most: int = 1024) -> int:
    """The fewest replicas whose p95 at `rate` meets `target_s`."""
    for n in range(1, most + 1):
        if p95(rate, load.mean_service_s, n * load.slots) <= target_s:
            return n
    raise ValueError(f"no number of replicas up to {most} meets a p95 of {target_s}s at {rate}/s")


def highest_rate(replicas: int, load: AgentLoad, target_s: float) -> float:
    """The highest arrival rate `replicas` replicas carry with p95 within `target_s` (0 if none)."""
    servers = replicas * load.slots
    lo, hi = 0.0, servers / load.mean_service_s
    if p95(0.0, load.mean_service_s, servers) > target_s:
        return 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p95(mid, load.mean_service_s, servers) <= target_s else (lo, mid)
    return lo


def in_flight(rate: float, load: AgentLoad, replicas: int) -> float:
    """Requests in flight (waiting or served) at `rate` on `replicas` replicas, by Little's law; inf if unstable."""
    servers, mu = replicas * load.slots, 1.0 / load.mean_service_s
    if rate >= servers * mu:
        return math.inf
    return rate * (load.mean_service_s + erlang_c(servers, rate / mu) / (servers * mu - rate))


def plan(load: AgentLoad, target_s: float) -> AgentPlan:
    """The cheapest autoscaling settings that keep the p95 response time within `target_s`."""
    if p95(0.0, load.mean_service_s, load.slots) > target_s:
        raise ValueError(f"the service time alone (mean {load.mean_service_s}s) misses a p95 of {target_s}s")
    low = replicas_for(load.mean_rate, load, target_s)
    high = max(low, replicas_for(load.peak_rate, load, target_s))
    rate = highest_rate(low, load, target_s)
    return AgentPlan(
        min_replicas=low,
        max_replicas=high,
        target_ongoing_requests=max(in_flight(rate, load, low) / low, 1e-3),
        peak_p95_s=p95(load.peak_rate, load.mean_service_s, high * load.slots),
    )


def load_of(arrivals_s: Sequence[float], service_s: Sequence[float], slots: int = 1,
            bucket_s: float = 60.0) -> AgentLoad:
    """An agent's load from its logged requests: their arrival times (s) and service times (s).

    The mean rate is requests over the span they cover; the peak rate is the busiest
    `bucket_s` window's (at least the mean).

    >>> load = load_of([0, 1, 2, 3, 60, 61, 62, 63, 64, 119], [0.5] * 10, slots=2, bucket_s=60)
    >>> round(load.mean_rate, 3), load.peak_rate, load.mean_service_s
    (0.084, 0.1, 0.5)
    """
    if not arrivals_s or not service_s:
        raise ValueError("no logged requests to measure a load from")
    start, end = min(arrivals_s), max(arrivals_s)
    span = max(end - start, bucket_s)
    counts = Counter(int((t - start) // bucket_s) for t in arrivals_s)
    mean = len(arrivals_s) / span
    return AgentLoad(mean_rate=mean, peak_rate=max(mean, max(counts.values()) / bucket_s),
                     mean_service_s=sum(service_s) / len(service_s), slots=slots)


def plan_resources(loads: Mapping[str, AgentLoad], target_s: float) -> dict[str, float]:
    """Every agent's plan as one proposal's `resources` (`<agent>.min_replicas`, ...).

    >>> plan_resources({"fast": AgentLoad(1.0, 2.0, 0.5, slots=8)}, 3.0)["fast.max_replicas"]
    1.0
    """
    out: dict[str, float] = {}
    for agent, load in sorted(loads.items()):
        out.update(plan(load, target_s).resources(agent))
    return out
