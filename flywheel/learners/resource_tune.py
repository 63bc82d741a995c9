"""Resource allocation by Ray Tune: each agent deployment's autoscaling settings, at the least cost.

A candidate gives each agent deployment its Serve autoscaling settings
(`min_replicas`, `max_replicas`, `target_ongoing_requests`). `assess` scores it
against the M/M/c model of flywheel.learners.capacity: at each arrival rate from
the observed mean to the observed peak, Serve's autoscaler runs the replicas that
bring the requests in flight per replica down to the target (clipped to the
bounds: `autoscaled_replicas`), and that many replicas must keep the p95 response
time within the workflow's target. The cost is the replicas run at the mean and at
the peak rate, averaged, times a replica's cost (its CPUs, or its accelerators for
a GPU model), plus a little for headroom above the peak that the load never uses.

`search_resources` runs the Tune job (Optuna's TPE over the integer bounds and the
target, started at the closed-form plan of capacity.plan, on the same Ray as
flywheel.learners.tune); the best feasible trial is the plan. Ray is imported
inside functions only.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from flywheel.learners.capacity import AgentLoad, in_flight, p95, plan, replicas_for
from flywheel.learners.tune import ray_for_job

PENALTY = 1000.0  # cost units per unit of relative p95 excess
HEADROOM_COST = 0.01  # per replica of max_replicas above what the peak needs
RATE_POINTS = 8  # rates checked from the mean to the peak


@dataclass(frozen=True, slots=True)
class AgentDemand:
    """One agent deployment to size: its load, the p95 it must meet and what a replica costs."""

    agent: str
    load: AgentLoad
    target_s: float
    replica_cost: float = 1.0
    accelerators_per_replica: int = 0  # a GPU model's accelerators per replica (0: none)
    most_replicas: int = 64
    service_cv: float | None = None  # the service time's observed std / mean (None: not measured)


@dataclass(frozen=True, slots=True)
class Scaling:
    """Serve autoscaling settings of one deployment."""

    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float


@dataclass(frozen=True, slots=True)
class Assessment:
    """A deployment's scaling under its load, by the queueing model."""

    cost: float
    violation: float  # sum of relative p95 excess over the rates checked (0: the target is met)
    mean_replicas: int
    peak_replicas: int
    mean_p95_s: float
    peak_p95_s: float


@dataclass(slots=True)
class ResourcePlan:
    """The Tune job's choice for each agent, its assessment, and what the search took."""

    scalings: dict[str, Scaling]
    assessments: dict[str, Assessment]
    start_cost: float
    trials: int
    seconds: float


def autoscaled_replicas(rate: float, load: AgentLoad, scaling: Scaling) -> int:
    """The replicas Serve's autoscaler settles on at `rate`: the fewest within the bounds whose
    requests in flight per replica are at most the target (the upper bound when none is)."""
    n = scaling.min_replicas
    while n < scaling.max_replicas and in_flight(rate, load, n) / n > scaling.target_ongoing_requests:
        n += 1
    return n


def assess(demand: AgentDemand, scaling: Scaling) -> Assessment:
    """The cost and the p95 shortfall of `scaling` from the observed mean to the peak rate."""
    load = demand.load
    rates = [load.mean_rate + (load.peak_rate - load.mean_rate) * k / (RATE_POINTS - 1) for k in range(RATE_POINTS)]
    violation = 0.0
    tails = []
    for rate in rates:
        n = autoscaled_replicas(rate, load, scaling)
        tail = p95(rate, load.mean_service_s, n * load.slots)
        tails.append((n, tail))
        violation += max(0.0, min(tail / demand.target_s, 10.0) - 1.0)
    (n_mean, p_mean), (n_peak, p_peak) = tails[0], tails[-1]
    cost = demand.replica_cost * ((n_mean + n_peak) / 2 + HEADROOM_COST * (scaling.max_replicas - n_peak))
    return Assessment(cost=cost, violation=violation, mean_replicas=n_mean, peak_replicas=n_peak,
                      mean_p95_s=p_mean, peak_p95_s=p_peak)


def score(demands: Sequence[AgentDemand], point: Mapping[str, float]) -> float:
    """A trial's score (higher is better): minus the total cost and a penalty per unit of p95 excess."""
    total = 0.0
    for d in demands:
        a = assess(d, scaling_of(d.agent, point))
        total += a.cost + PENALTY * a.violation
    return -total


def scaling_of(agent: str, point: Mapping[str, float]) -> Scaling:
    """The agent's settings in a search point (max_replicas raised to min_replicas if below)."""
    low = int(round(point[f"{agent}.min_replicas"]))
    return Scaling(min_replicas=low, max_replicas=max(low, int(round(point[f"{agent}.max_replicas"]))),
                   target_ongoing_requests=float(point[f"{agent}.target_ongoing_requests"]))


def closed_form_point(demands: Sequence[AgentDemand]) -> dict[str, float]:
    """The search's start: capacity.plan's settings for each agent."""
    out: dict[str, float] = {}
    for d in demands:
        try:
            p = plan(d.load, d.target_s)
        except ValueError as e:
            raise ValueError(f"agent {d.agent}: {e}") from None
        out.update({f"{d.agent}.min_replicas": p.min_replicas, f"{d.agent}.max_replicas": p.max_replicas,
                    f"{d.agent}.target_ongoing_requests": p.target_ongoing_requests})
    return out


def _upper(d: AgentDemand) -> int:
    """The most replicas the search tries: twice what the peak needs, within the agent's limit."""
    return max(1, min(d.most_replicas, 2 * replicas_for(d.load.peak_rate, d.load, d.target_s, d.most_replicas)))


def _trainable(config: dict[str, Any], demands: Sequence[AgentDemand]) -> None:
    from ray import tune

    tune.report({"score": score(demands, config)})


def search_resources(demands: Sequence[AgentDemand], *, trials: int = 48, seed: int = 0,
                     cpus_per_trial: float = 0.25, progress: bool = True, ray_address: str | None = None,
                     local_cpus: int = 2) -> ResourcePlan:
    """Run the Tune job over every agent's settings; the best trial is the plan (ties: the first found)."""
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    if not demands:
        raise ValueError("no agent load to plan for")
    began = time.perf_counter()
    start = closed_form_point(demands)
    space: dict[str, Any] = {}
    for d in demands:
        most = _upper(d)
        space[f"{d.agent}.min_replicas"] = tune.randint(1, most + 1)
        space[f"{d.agent}.max_replicas"] = tune.randint(1, most + 1)
        space[f"{d.agent}.target_ongoing_requests"] = tune.loguniform(0.05, 4.0 * d.load.slots)
    for d in demands:  # the closed form's target, inside the searched range
        key = f"{d.agent}.target_ongoing_requests"
        start[key] = min(max(start[key], 0.05), 4.0 * d.load.slots)
    searcher = OptunaSearch(sampler=TPESampler(seed=seed, n_startup_trials=min(10, trials), multivariate=True),
                            points_to_evaluate=[start])
    trainable = tune.with_resources(tune.with_parameters(_trainable, demands=list(demands)), {"cpu": cpus_per_trial})
    with ray_for_job(ray_address, local_cpus), tempfile.TemporaryDirectory(prefix="flywheel-resources-") as storage:
        grid = tune.Tuner(
            trainable, param_space=space,
            tune_config=tune.TuneConfig(metric="score", mode="max", search_alg=searcher, num_samples=trials,
                                        reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, verbose=1 if progress else 0, name="resources"),
        ).fit()
        best = grid.get_best_result(metric="score", mode="max")
        point = {k: float(best.config[k]) for k in space}
        ran = len(grid)
    scalings = {d.agent: scaling_of(d.agent, point) for d in demands}
    return ResourcePlan(
        scalings=scalings,
        assessments={d.agent: assess(d, scalings[d.agent]) for d in demands},
        start_cost=sum(assess(d, scaling_of(d.agent, start)).cost for d in demands),
        trials=ran,
        seconds=time.perf_counter() - began,
    )


def resources_of(demands: Sequence[AgentDemand], result: ResourcePlan) -> dict[str, float]:
    """The plan as a proposal's `resources`: `<agent>.min_replicas`, `.max_replicas`,
    `.target_ongoing_requests`, and `.accelerators` (the most a GPU model's replicas hold)."""
    out: dict[str, float] = {}
    for d in demands:
        s = result.scalings[d.agent]
        out.update({f"{d.agent}.min_replicas": float(s.min_replicas), f"{d.agent}.max_replicas": float(s.max_replicas),
                    f"{d.agent}.target_ongoing_requests": round(s.target_ongoing_requests, 3)})
        if d.accelerators_per_replica:
            out[f"{d.agent}.accelerators"] = float(s.max_replicas * d.accelerators_per_replica)
    return out
