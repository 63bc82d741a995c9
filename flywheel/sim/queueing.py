"""A discrete-event simulation of an agent deployment's queue: the check of a resource plan.

Requests arrive as a Poisson process and wait first come, first served for one
of `servers` slots (replicas times requests each serves at once); each takes a
service time drawn from an exponential (the planning model's assumption) or a
lognormal of the same mean (closer to a model call's). `response_times` returns
each request's wait plus service, seeded.
"""

from __future__ import annotations

import heapq
import math
from typing import Literal

import numpy as np


def response_times(
    rate: float,
    mean_service_s: float,
    servers: int,
    requests: int,
    *,
    seed: int = 0,
    service: Literal["exponential", "lognormal"] = "exponential",
    sigma: float = 0.5,
    warmup: int = 1000,
) -> np.ndarray:
    """Response times (s) of `requests` requests after `warmup` more, at `rate` per second.

    >>> r = response_times(0.5, 1.0, 1, 20000, seed=1)  # M/M/1 at rho 0.5: mean response 2 s
    >>> bool(abs(r.mean() - 2.0) < 0.1)
    True
    """
    rng = np.random.default_rng(seed)
    total = requests + warmup
    arrivals = np.cumsum(rng.exponential(1.0 / rate, total))
    if service == "exponential":
        work = rng.exponential(mean_service_s, total)
    else:  # lognormal with the same mean
        work = rng.lognormal(math.log(mean_service_s) - sigma**2 / 2, sigma, total)
    free = [0.0] * servers  # when each slot is next free (a heap)
    out = np.empty(total)
    for i in range(total):
        start = max(arrivals[i], heapq.heappop(free))
        done = start + work[i]
        heapq.heappush(free, done)
        out[i] = done - arrivals[i]
    return out[warmup:]


def p95(times: np.ndarray) -> float:
    """The 95th percentile of response times."""
    return float(np.quantile(times, 0.95))
