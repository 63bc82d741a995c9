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


def tune_workflow(settings: AppSettings, workflow: str, *, trials: int | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Run a Ray Tune job for `workflow` on the outcomes logged after its champion's position,
    propose the best trial (outbox, `proposed_by: tune`) and let the governor judge it."""
    specs = load_workflows(settings)
    if workflow not in specs:
        raise ValueError(f"workflow {workflow!r}: not one of {sorted(specs)}")
    spec, tuning = specs[workflow], settings.tuning
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    governor = governor_of(settings, ledger)
    champion = governor.registry.champion(workflow)
    if champion is None or champion.config.routing.kind != "bandit" or champion.policy_state is None:
        raise ValueError(f"{workflow}: no learned (bandit) champion to tune yet")
    examples, first, last = load_window(ledger, spec, champion.position, tuning.window_outcomes)
    if len(examples) < 50:
        raise ValueError(f"{workflow}: {len(examples)} outcomes after the champion's position; too few to tune")
    data = TuneData(spec=spec, examples=examples, base_state=champion.policy_state,
                    constraints=constraints_of(spec, tuning.max_human_share),
                    first_position=first, last_position=last)
    space = SearchSpace.of(spec, governor.policies.for_workflow(workflow))
    start = champion_point(champion.config, loads_policy(champion.policy_state).exploration)
    result = search(data, space, start, trials=trials or tuning.trials, seed=settings.seed,
                    cpus_per_trial=tuning.cpus_per_trial, progress=progress)
    outbox_id = propose(ledger, champion.config, data, space, result)
    judged = governor.publish_outbox()
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
