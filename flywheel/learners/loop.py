"""The fast loop, in plain Python: ledger outcomes in, learners updated, versions out.

The ledger is the source of truth: the loop reads outcomes in ledger order,
each joined with its own decision, so a restart (load the champion's state,
replay the outcomes after its position) ends in the same state as a loop that
never stopped. An outcome whose example a learner refuses (a non-finite or
absurd number that got past the edge) is skipped, never applied, and a
learning event of kind "refused" with the reason is written to the ledger.
The learner deployment on Serve drives this object.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

from flywheel.learners.examples import LearningExample, RefusedExample
from flywheel.learners.state import dumps_learner, dumps_policy, loads_learner
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.registry.learned_config import LearnedConfig, RoutingConfig, state_sha
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.registry.governor import Governor, Outcome
from flywheel.ledger import Ledger
from flywheel.ledger.records import LearningEvent, OutcomeJoin
from flywheel.workflows.reward import outcome_quality
from flywheel.workflows.spec import WorkflowSpec


log = logging.getLogger(__name__)


@dataclass(slots=True)
class Published:
    """A version just proposed (in the ledger's outbox): what routers would decide with."""

    config: LearnedConfig
    policy_state: bytes
    outbox_id: int


def example_of(j: OutcomeJoin) -> LearningExample | None:
    """The learning example an outcome gives, or None when its run was never routed."""
    if j.features is None or j.arm is None:
        return None
    o = j.outcome
    quality = outcome_quality(o.success, o.quality)
    if quality is None:
        return None
    correct = o.success if o.success is not None else quality >= 0.5
    return LearningExample(
        x=dict(j.features),
        arm=j.arm,
        propensity=float(j.propensity or 1.0),
        quality=quality,
        cost=o.cost if o.cost is not None else j.agent_cost,
        latency_s=o.latency_s if o.latency_s is not None else j.agent_latency_s,
        confidence=j.confidence,
        correct=correct,
        gate=j.gate_step,
        human_override=o.human_override,
        decided_at=j.decision_id,
    )


def refused_event(workflow: str, j: OutcomeJoin, reason: str) -> LearningEvent:
    """The ledger's note that the outcome `j` was not learned from, and why."""
    return LearningEvent(
        workflow=workflow,
        kind="refused",
        arm=j.arm,
        position=j.outcome.position,
        detail={"reason": reason, "event_id": j.outcome.event_id, "run_id": j.outcome.run_id},
    )


def _restorable(tags: dict[str, str]) -> bool:
    """A registry version whose learner state the loop continues from: its own, or a live warm start."""
    by = tags.get("proposed_by")
    return by == "learner" or (by == "warm_start" and tags.get("status") in ("auto", "approved"))


class LearningLoop:
    """One WorkflowLearner per workflow, fed from the ledger, publishing to the registry."""

    def __init__(
        self,
        specs: dict[str, WorkflowSpec],
        ledger: Ledger,
        registry: MlflowRegistry | None,
        *,
        governor: Governor | None = None,
        seed: int = 0,
        n_bits: int = 14,
        publish_every_outcomes: int = 200,
        publish_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.specs = specs
        self.ledger = ledger
        self.registry = registry
        self.governor = governor
        self.seed = seed
        self.n_bits = n_bits
        self.publish_every_outcomes = publish_every_outcomes
        self.publish_every_s = publish_every_s
        self.clock = clock
        self.learners: dict[str, WorkflowLearner] = {}
        self.positions: dict[str, int] = {}
        self._pending: dict[str, int] = {}  # outcomes learned since the last version
        self._last_publish: dict[str, float] = {}
        for name in specs:
            self._fresh(name)

    def _fresh(self, workflow: str) -> None:
        self.learners[workflow] = WorkflowLearner(
            self.specs[workflow], seed=self.seed, n_bits=self.n_bits
        )
        self.positions[workflow] = 0
        self._pending[workflow] = 0
        self._last_publish[workflow] = self.clock()

    def restore(self) -> dict[str, int | None]:
        """Load each workflow's newest learner state and where it had learned up to.

        The newest state is the newest version this loop proposed, whatever review
        made of it: one still waiting in the ledger's outbox, else the newest in
        the registry; or a newer warm start (`flywheel learn --from`) that went live
        (status auto or approved), whose position 0 replays this ledger on top of it.
        Returns the registry version (or -outbox id) loaded, or None.
        With nothing to load (or MLflow unreachable) the learner starts fresh and
        replays the ledger from the start, which ends in the same state.
        """
        loaded: dict[str, int | None] = {}
        waiting = {v.workflow: v for v in self.ledger.unpublished_versions(limit=10**6)
                   if v.learner_state and v.proposed_by == "learner"}
        for name in self.specs:
            loaded[name] = None
            if name in waiting:
                item = waiting[name]
                self.learners[name] = loads_learner(item.learner_state)
                self.positions[name] = item.position
                loaded[name] = -item.id
                continue
            if self.registry is None:
                continue
            try:
                ours = [v.number for v in self.registry.versions(name) if _restorable(v.tags)]
                newest = self.registry.version(name, ours[-1]) if ours else None
            except Exception as e:  # MLflow down: start fresh; replaying the ledger ends the same
                log.warning("%s: registry unreachable (%s); learning again from the ledger", name, e)
                continue
            if newest is None or newest.learner_state is None:
                continue
            self.learners[name] = loads_learner(newest.learner_state)
            self.positions[name] = newest.position
            loaded[name] = newest.number
        return loaded

    @property
    def position(self) -> int:
        """The ledger position every workflow has learned up to."""
        return min(self.positions.values(), default=0)

    def step(self, limit: int = 1000) -> int:
        """Learn from the outcomes stored after what was learned; returns how many were learned."""
        joined = self.ledger.joined_outcomes_after(self.position, limit=limit)
        learned = 0
        events: list[LearningEvent] = []
        for j in joined:
            wf = j.outcome.workflow
            if wf not in self.learners or j.outcome.position <= self.positions[wf]:
                continue
            ex = example_of(j)
            if ex is not None:
                try:
                    drifts = self.learners[wf].learn(ex)
                except RefusedExample as e:  # never applied: what it holds would poison the state
                    log.warning("%s: outcome at position %d refused: %s", wf, j.outcome.position, e)
                    events.append(refused_event(wf, j, str(e)))
                    self.positions[wf] = j.outcome.position
                    continue
                for drift in drifts:
                    events.append(
                        LearningEvent(
                            workflow=wf,
                            kind="drift",
                            arm=getattr(drift, "arm", None),
                            position=j.outcome.position,
                            detail={k: v for k, v in asdict(drift).items() if k != "arm"},
                        )
                    )
                learned += 1
                self._pending[wf] += 1
            self.positions[wf] = j.outcome.position
        if joined:
            # Everything up to `last` has been read, whatever its workflow, so every
            # learner has seen all of its outcomes up to there.
            last = joined[-1].outcome.position
            for wf in self.positions:
                self.positions[wf] = max(self.positions[wf], last)
        self.ledger.record_learning_events(events)
        return learned

    def due(self, force: bool = False) -> list[str]:
        """Workflows with something learned whose count or time has come."""
        now = self.clock()
        return [
            wf
            for wf, n in self._pending.items()
            if n > 0
            and (force or n >= self.publish_every_outcomes or now - self._last_publish[wf] >= self.publish_every_s)
        ]

    def snapshot(self, workflow: str) -> tuple[LearnedConfig, bytes, bytes, dict[str, float]]:
        """(config, learner state, policy state, evidence) of a workflow now."""
        learner = self.learners[workflow]
        spec = self.specs[workflow]
        policy_state = dumps_policy(learner.policy())
        evidence = dict(learner.evidence())
        learner.start_evidence_window()  # before saving: a restored learner matches one never stopped
        drifts = [e for e in self.ledger.learning_events(workflow) if e.kind == "drift"]
        evidence["drift_events_total"] = float(len(drifts))
        config = LearnedConfig(
            workflow=workflow,
            thresholds=learner.thresholds_now(),
            routing=RoutingConfig(
                kind="bandit",
                weights={a: float(evidence.get(f"reward_mean.{a}", 0.0)) for a in spec.arms},
                seed=self.seed,
                exploration=min(1.0, float(learner.bandit.exploration)),
                state_sha=state_sha(policy_state),
            ),
            cost_weight=spec.objective.cost_weight,
            prompts=spec.prompts,  # what its runs are prompted with: a rollback restores them
        )
        return config, dumps_learner(learner), policy_state, evidence

    def publish_due(self, force: bool = False) -> list[Published]:
        """Propose a version of each due workflow: into the ledger's outbox (durable, in order).

        `publish_pending` then moves the outbox to the registry, through policy.
        A loop without a governor publishes nothing (benchmarks, tests): the
        snapshots are only returned.
        """
        out = []
        for wf in self.due(force):
            config, learner_state, policy_state, evidence = self.snapshot(wf)
            outbox_id = 0 if self.governor is None else self.ledger.enqueue_version(
                workflow=wf,
                proposed_by="learner",
                position=self.positions[wf],
                config=config.model_dump(),
                evidence=evidence,
                learner_state=learner_state,
                policy_state=policy_state,
            )
            self._pending[wf] = 0
            self._last_publish[wf] = self.clock()
            out.append(Published(config=config.with_version(), policy_state=policy_state, outbox_id=outbox_id))
        return out

    def publish_pending(self) -> list[Outcome]:
        """Register the outbox's versions in MLflow, through policy; raises RegistryUnavailable
        (the versions wait) when MLflow cannot be reached."""
        return self.governor.publish_outbox() if self.governor is not None else []
