"""`flywheel learn WF --from FILE` and `flywheel export WF`: a warm start proposed through the governor.

`warm_start` fits a fresh learner of the workflow (as the learning loop builds it)
on a file (flywheel.learners.warm_start), puts it into the ledger's outbox as a
version with `proposed_by: warm_start`, its evidence (rows, the estimated reward with
its interval, the gain) and its learner state, at position 0, and lets the governor
judge it by policy. When it goes live (policy's auto-promotion, or a reviewer's
approval), the learning loop loads it at its next start (`LearningLoop.restore`) and
replays this deployment's own ledger on top of it: online learning continues from
the warm start, and nothing logged here is lost.

Which file it is: `.jsonl`, `.jsonl.gz`, or a `.parquet` with `arm` and `propensity`
columns, is a logged-outcomes export (flywheel.learners.logged); anything else
(`.csv`, `.csv.gz`, another `.parquet`) a RouterBench wide table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.eval.bench_replay import _learning_scores
from flywheel.eval.routerbench import load_routerbench
from flywheel.learners.logged import SUFFIXES, logged_rows, read_logged, write_logged
from flywheel.learners.loop import LearningLoop
from flywheel.learners.warm_start import fit_logged, fit_wide
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.ledger import Ledger
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import AppSettings
from flywheel.services.wiring import governor_of
from flywheel.workflows.inputs import features_of

PROPOSED_BY = "warm_start"


def is_logged(path: Path) -> bool:
    """Whether `path` is a logged-outcomes export (else a RouterBench wide table)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return {"arm", "propensity"} <= set(pq.read_schema(path).names)
    return any(name.endswith(s) for s in SUFFIXES)


def warm_start(settings: AppSettings, workflow: str, path: str | Path, *, publish: bool = True) -> dict[str, Any]:
    """Fit `workflow`'s learner on the file and propose it; returns what was done (JSON-ready)."""
    path = Path(path)
    specs = load_workflows(settings)
    if workflow not in specs:
        raise ValueError(f"workflow {workflow!r}: not one of {sorted(specs)}")
    if not path.is_file():
        raise ValueError(f"--from: {path} is not a file")
    spec = specs[workflow]
    learner = WorkflowLearner(spec, seed=settings.seed, n_bits=settings.learning.n_bits)
    if is_logged(path):
        kind = "logged"
        evidence = fit_logged(learner, [r.example() for r in read_logged(path)])
    else:
        kind = "wide"
        table = load_routerbench(path)
        xs = [features_of(spec, {spec.prompt_field: p}) for p in table.prompts]
        evidence = fit_wide(learner, xs, table.models, _learning_scores(table), table.costs)
    ledger = Ledger(settings.resolved_database_url())
    try:
        ledger.upgrade()
        governor = governor_of(settings, ledger)
        loop = LearningLoop({workflow: spec}, ledger, governor.registry, governor=governor, seed=settings.seed,
                            n_bits=settings.learning.n_bits)
        loop.learners[workflow] = learner
        config, learner_state, policy_state, own = loop.snapshot(workflow)
        evidence = {**own, **evidence}
        outbox_id = ledger.enqueue_version(
            workflow=workflow, proposed_by=PROPOSED_BY, position=0, config=config.model_dump(),
            evidence=evidence, learner_state=learner_state, policy_state=policy_state,
        )
        judged = governor.publish_outbox() if publish else []
    finally:
        ledger.dispose()
    mine = [o for o in judged if o.workflow == workflow]
    return {
        "workflow": workflow,
        "source": kind,
        "file": str(path),
        "outbox_id": outbox_id,
        "evidence": evidence,
        "judged": [{"version": o.number, "action": o.action, "status": o.status} for o in mine],
    }


def export(settings: AppSettings, workflow: str, path: str | Path) -> int:
    """Write `workflow`'s learnable outcomes in this deployment's ledger to `path`; returns how many."""
    specs = load_workflows(settings)
    if workflow not in specs:
        raise ValueError(f"workflow {workflow!r}: not one of {sorted(specs)}")
    ledger = Ledger(settings.resolved_database_url())
    try:
        ledger.upgrade()
        return write_logged(logged_rows(ledger, workflow), path)
    finally:
        ledger.dispose()
