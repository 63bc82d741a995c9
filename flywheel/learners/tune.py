"""The slow loop: a Ray Tune search over a workflow's config, into a proposal in the outbox.

`load_window` reads the runs logged after the champion's position from the
ledger (out of sample for the champion's state); `search` runs a Ray Tune job on
the Ray this process is connected to (a Serve replica's: the service's cluster),
else on the cluster at an explicit address (argument or RAY_ADDRESS), else on a
local Ray it starts for the job and shuts down after; it never joins a Ray it merely
finds on the machine. The search: Optuna's TPE sampler
(fit for few trials), started at the champion's own point, with ASHA stopping
the trials whose score is poor on the first chunks of the window. `propose` puts
the best trial into the ledger's outbox (`proposed_by: tune`) with its evidence;
the governor then judges it like any other proposal. Ray is imported inside
functions only.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from flywheel.learners.counterfactual import candidate_state
from flywheel.learners.loop import example_of
from flywheel.learners.tune_objective import Constraints, SearchSpace, TuneData, evaluate_point, run_trial
from flywheel.ledger import Ledger
from flywheel.registry.learned_config import LearnedConfig, state_sha
from flywheel.workflows.spec import WorkflowSpec

METRIC = "score"


@dataclass(slots=True)
class TuneResult:
    """The best trial of a search, and what the search took."""

    point: dict[str, float]
    metrics: dict[str, float]
    champion_metrics: dict[str, float]
    trials: int
    stopped_early: int
    seconds: float


def load_window(ledger: Ledger, spec: WorkflowSpec, after: int, limit: int = 20000) -> tuple[list, int, int]:
    """(examples, first position, last position) of the workflow's runs logged after `after`."""
    out, first, last, position = [], 0, after, after
    while len(out) < limit:
        batch = ledger.joined_outcomes_after(position, limit=min(5000, limit))
        if not batch:
            break
        for j in batch:
            if j.outcome.workflow == spec.name:
                ex = example_of(j)
                if ex is not None:
                    out.append(ex)
                    first = first or j.outcome.position
                    last = j.outcome.position
        position = batch[-1].outcome.position
    return out[:limit], first, last


def champion_point(config: LearnedConfig, exploration: float) -> dict[str, float]:
    """The search-space point of a live config (where the search starts)."""
    point = {"cost_weight": config.cost_weight, "routing.exploration": exploration}
    point.update({f"thresholds.{g}": v for g, v in config.thresholds.items()})
    return point


def _trainable(config: dict[str, Any], data: TuneData, space: SearchSpace, chunks: int) -> None:
    """One Tune trial: the candidate at `config`, reported chunk by chunk."""
    from ray import tune

    run_trial({**space.fixed(), **config}, data, space, tune.report, chunks=chunks)


def search(
    data: TuneData,
    space: SearchSpace,
    start: dict[str, float],
    *,
    trials: int = 24,
    seed: int = 0,
    cpus_per_trial: float = 0.5,
    progress: bool = True,
    chunks: int = 4,
    ray_address: str | None = None,
    local_cpus: int = 2,
) -> TuneResult:
    """Run the Tune job: TPE over `space` from `start`, ASHA early stopping; returns the best trial.

    Ray: see the module docstring (`ray_address`, else RAY_ADDRESS, else a local Ray of
    `local_cpus` CPUs for this job only)."""
    began = time.perf_counter()
    with ray_for_job(ray_address, local_cpus):
        result = _fit(data, space, start, trials=trials, seed=seed, cpus_per_trial=cpus_per_trial,
                      progress=progress, chunks=chunks)
    point, trials_run, stopped, first = result
    return TuneResult(
        point=point,
        metrics=evaluate_point(point, data, space),
        champion_metrics=evaluate_point(first, data, space),
        trials=trials_run,
        stopped_early=stopped,
        seconds=time.perf_counter() - began,
    )


@contextmanager
def ray_for_job(address: str | None = None, local_cpus: int = 2) -> Iterator[None]:
    """The Ray a tune job runs on: the one already connected, an explicit address, or a local one.

    Whatever this starts or joins it shuts down (disconnects from) on leaving; a Ray
    connected before is left as it was."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:  # "local": never the cluster ray_current_cluster names (another user's, on a shared machine)
        ray.init(address="local", num_cpus=local_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def _fit(data: TuneData, space: SearchSpace, start: dict[str, float], *, trials: int, seed: int,
         cpus_per_trial: float, progress: bool, chunks: int) -> tuple[dict[str, float], int, int, dict[str, float]]:
    """(best point, trials run, trials stopped early, start point) of a Tune job on the connected Ray."""
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    param_space = {k: tune.uniform(lo, hi) for k, (lo, hi) in space.free().items()}
    first = {k: min(space.bounds[k][1], max(space.bounds[k][0], v)) for k, v in start.items() if k in space.bounds}
    first = {**space.fixed(), **first}
    searcher = OptunaSearch(
        sampler=TPESampler(seed=seed, n_startup_trials=min(8, trials), multivariate=True),
        points_to_evaluate=[{k: v for k, v in first.items() if k in param_space}],
    )
    scheduler = ASHAScheduler(max_t=chunks, grace_period=1, reduction_factor=2)
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, data=data, space=space, chunks=chunks),
        {"cpu": cpus_per_trial},
    )
    with tempfile.TemporaryDirectory(prefix="flywheel-tune-") as storage:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="max", search_alg=searcher, scheduler=scheduler, num_samples=trials,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(storage_path=storage, verbose=1 if progress else 0, name=data.spec.name),
        )
        grid = tuner.fit()
        full = [r for r in grid if r.metrics and r.metrics.get("training_iteration", 0) >= chunks]
        best = max(full or list(grid), key=lambda r: r.metrics.get(METRIC, float("-inf")))
        stopped = sum(1 for r in grid if r.metrics and r.metrics.get("training_iteration", 0) < chunks)
        point = {**space.fixed(), **{k: float(best.config[k]) for k in param_space}}
    return point, len(grid), stopped, first


def proposal(
    champion: LearnedConfig, data: TuneData, space: SearchSpace, result: TuneResult,
    resources: Mapping[str, float] | None = None,
) -> tuple[LearnedConfig, bytes, dict[str, float]]:
    """(config, policy state, evidence) of the best trial: the champion with the tuned values, and
    the `resources` of a resource plan (flywheel.learners.capacity.plan_resources) over its own."""
    cand = space.candidate(result.point)
    state = candidate_state(data.base_state, cand, data.spec)
    config = champion.model_copy(
        update={
            "version": "",
            "thresholds": {**champion.thresholds, **cand.thresholds},
            "cost_weight": cand.cost_weight,
            "resources": {**champion.resources, **(resources or {})},
            "routing": champion.routing.model_copy(
                update={"kind": "bandit", "exploration": cand.exploration, "state_sha": state_sha(state)}
            ),
        }
    )
    m, c = result.metrics, result.champion_metrics
    evidence = {
        "estimated_reward": m["estimate"],
        "estimated_reward_low": m["estimate_low"],
        "estimated_reward_high": m["estimate_high"],
        "estimated_reward_ips": m["ips"],
        "estimated_reward_snips": m["snips"],
        "estimated_human_share": m["human_share"],
        "estimated_unattended_error": m["unattended_error"],
        "feasible": m["feasible"],
        "champion_estimated_reward": c["estimate"],
        "estimated_gain": m["estimate"] - c["estimate"],
        "window_first_position": float(data.first_position),
        "window_last_position": float(data.last_position),
        "window_outcomes": float(len(data.examples)),
        "trials": float(result.trials),
        "trials_stopped_early": float(result.stopped_early),
        "tune_seconds": result.seconds,
    }
    return config, state, evidence


def propose(ledger: Ledger, champion: LearnedConfig, data: TuneData, space: SearchSpace,
            result: TuneResult, resources: Mapping[str, float] | None = None) -> int:
    """Put the best trial into the ledger's outbox (`proposed_by: tune`); returns its outbox id."""
    config, state, evidence = proposal(champion, data, space, result, resources)
    return ledger.enqueue_version(
        workflow=champion.workflow,
        proposed_by="tune",
        position=data.last_position,
        config=config.model_dump(),
        evidence=evidence,
        learner_state=None,
        policy_state=state,
    )


def constraints_of(spec: WorkflowSpec, max_human_share: float) -> Constraints:
    """The workflow's constraints: its unattended error target, and the human share allowed."""
    return Constraints(max_human_share=max_human_share,
                       max_unattended_error=spec.targets.max_unattended_error_rate)
