"""A tune job of the running service: the champion and its data window in, a judged proposal out."""

from __future__ import annotations

from typing import Any

from flywheel.learners.state import loads_policy
from flywheel.learners.tune import champion_point, constraints_of, load_window, propose, search
from flywheel.learners.tune_objective import SearchSpace, TuneData
from flywheel.ledger import Ledger
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import AppSettings
from flywheel.services.wiring import governor_of
from flywheel.workflows.spec import WorkflowSpec


def tune_workflow(settings: AppSettings, workflow: str, *, trials: int | None = None,
                  progress: bool = True, publish: bool = True) -> dict[str, Any]:
    """Run a Ray Tune job for `workflow` on the outcomes logged after its champion's position,
    propose the best trial (outbox, `proposed_by: tune`) and let the governor judge it (unless
    `publish` is False: the caller publishes the outbox, e.g. the learner deployment, which
    also tells the routers)."""
    specs = load_workflows(settings)
    if workflow not in specs:
        raise ValueError(f"workflow {workflow!r}: not one of {sorted(specs)}")
    spec = specs[workflow]
    ledger = Ledger(settings.resolved_database_url())
    try:
        ledger.upgrade()
        return _tune(settings, spec, ledger, trials=trials, progress=progress, publish=publish)
    finally:
        ledger.dispose()


def _tune(settings: AppSettings, spec: WorkflowSpec, ledger: Ledger, *, trials: int | None, progress: bool,
          publish: bool) -> dict[str, Any]:
    """The job of `tune_workflow` on an open ledger."""
    workflow, tuning = spec.name, settings.tuning
    governor = governor_of(settings, ledger)
    champion = governor.registry.champion(workflow)
    if champion is None or champion.config.routing.kind != "bandit" or champion.policy_state is None:
        raise ValueError(f"{workflow}: no learned (bandit) champion to tune yet")
    # everything the champion has not learned from, and at least the latest window_outcomes positions:
    # a champion that publishes often has learned from nearly all; the logged propensities keep the
    # estimates valid either way (its reward model is then partly in sample, for every candidate alike)
    after = min(champion.position, max(0, ledger.last_position() - tuning.window_outcomes))
    examples, first, last = load_window(ledger, spec, after, tuning.window_outcomes)
    if len(examples) < 50:
        raise ValueError(f"{workflow}: {len(examples)} outcomes in the data window; too few to tune")
    data = TuneData(spec=spec, examples=examples, base_state=champion.policy_state,
                    constraints=constraints_of(spec, tuning.max_human_share),
                    first_position=first, last_position=last)
    start = champion_point(champion.config, loads_policy(champion.policy_state).exploration)
    space = SearchSpace.of(spec, governor.policies.for_workflow(workflow), champion=start)
    result = search(data, space, start, trials=trials or tuning.trials, seed=settings.seed,
                    cpus_per_trial=tuning.cpus_per_trial, progress=progress,
                    ray_address=tuning.ray_address, local_cpus=tuning.local_cpus)
    outbox_id = propose(ledger, champion.config, data, space, result)
    judged = governor.publish_outbox() if publish else []
    return {
        "workflow": workflow,
        "outbox_id": outbox_id,
        "point": result.point,
        "estimate": result.metrics,
        "champion_estimate": result.champion_metrics,
        "trials": result.trials,
        "trials_stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 2),
        "judged": [repr(o) for o in judged],
    }
