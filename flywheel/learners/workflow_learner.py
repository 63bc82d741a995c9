"""Everything one workflow learns, composed: routing, gate thresholds, drift.

- `bandit`: a LinearBandit over the workflow's arms on its features (the
  workflow objective's cost and latency weights, relative to its quality weight);
- `thresholds`: a ThresholdLearner per gate step, aiming at the spec's
  `max_unattended_error_rate` within its `threshold_bounds`;
- `drift`: a DriftMonitor (ADWIN per arm) on each outcome's reward under the
  workflow objective. A drift that lowers an arm's reward raises exploration to
  `drift_epsilon` for `drift_events` updates and restores that arm's learning
  rate, so the router re-learns the arm (and its rivals) quickly. A drift that
  raises it only restores the arm's learning rate: routing away from an arm's
  weak spots raises its mean reward too, which is no reason to explore.

A failed run (the agent gave no answer: `confidence is None`) teaches the
router that the arm scored 0 there while the router still predicts the arm
above `failure_floor` on that input, or would still choose it: enough to route
around an arm that is down, without burying it under every failed probe of a
long outage, so that it is quickly trusted again when it is back. The arm's
cost and latency stay as they were (a failed call says nothing about what an
answer costs).

After `down_after` failures in a row an arm is down (a circuit breaker): it is
taken out of routing, and only probed, each run with probability 1/interval,
the interval starting at `probe_every` runs and doubling with every failed
probe up to `probe_max`; every probe's propensity is logged like any choice's.
An arm that answers again (a model added, or back from an outage) is a drift
too (detector "availability"): exploration rises to `comeback_epsilon` for
`drift_events` updates. Outcomes come late and out of order: an answer counts
as a comeback only when its run was decided after the arm's last failure
(`LearningExample.decided_at`), so a late success of a run from before an
outage neither closes the breaker nor looks like a comeback.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Mapping

from flywheel.learners.off_policy import SnipsGain
from flywheel.learners.drift import DriftEvent, DriftMonitor
from flywheel.learners.examples import LearningExample, RefusedExample, example_problem
from flywheel.learners.features import HashedFeaturizer
from flywheel.learners.laplace import Laplace
from flywheel.learners.linear_bandit import LinearBandit
from flywheel.learners.routing_policy import RoutingPolicy
from flywheel.learners.threshold import ThresholdLearner
from flywheel.workflows.reward import reward
from flywheel.workflows.routing import Choice
from flywheel.workflows.spec import WorkflowSpec

WINDOW = 500  # outcomes per arm (and overall) behind the "recent" means of evidence()

# LinearBandit arguments tuned on the simulator's scenarios (benchmarks/sim_scenarios.py);
# the `bandit` argument overrides them key by key.
BANDIT_DEFAULTS: dict[str, Any] = {
    "solver": Laplace(learning_rate=1.0), "ucb": 0.5, "explore_z": 2.0,
    "epsilon": 0.02, "epsilon_min": 0.002,
}


class WorkflowLearner:
    """One workflow's learners: decide with the bandit, learn from each outcome once.

    `bandit`, `threshold` and `detector` are extra keyword arguments of the
    LinearBandit, of every ThresholdLearner and of the DriftMonitor. Parameters
    are stored as given, except two whose names the service API gives to other
    things: the attribute `bandit` is the LinearBandit built from the `bandit`
    argument, and `drift_events` lists the drifts seen (the argument is how many
    updates a drift's exploration lasts). `_get_params()` returns all as given.

    >>> from flywheel.workflows.loading import load_model
    >>> spec = load_model("configs/workflows/ticket_triage.yaml", WorkflowSpec)
    >>> learner = WorkflowLearner(spec, seed=1)
    >>> x = {"product": "billing", "customer_tier": "pro", "channel": "chat", "prompt": "refund please"}
    >>> for i in range(400):
    ...     choice = learner.decide(x, key=f"run-{i}")
    ...     good = choice.arm == "fast"
    ...     _ = learner.learn(LearningExample(x, choice.arm, choice.propensity, quality=float(good),
    ...                       cost=0.0, latency_s=0.5, confidence=0.9 if good else 0.4, correct=good,
    ...                       gate="confidence"))
    >>> learner.decide(x, key="next").arm, learner.n_updates
    ('fast', 400)
    >>> sorted(learner.evidence())[:4]
    ['drift_events', 'estimated_gain', 'estimated_gain_n', 'estimated_gain_se']
    """

    def __init__(
        self,
        spec: WorkflowSpec,
        *,
        seed: int = 0,
        bandit: dict[str, Any] | None = None,
        threshold: dict[str, Any] | None = None,
        drift_epsilon: float = 0.1,
        drift_events: int = 500,
        detector: dict[str, Any] | None = None,
        n_bits: int = 14,
        bigrams: bool = False,
        prompt_weight: float = 0.3,
        down_after: int = 3,
        failure_floor: float = 0.5,
        comeback_epsilon: float = 0.3,
        probe_every: int = 50,
        probe_max: int = 2000,
    ):
        self.spec = spec
        self.seed = seed
        self.threshold = threshold
        self.drift_epsilon = drift_epsilon
        self._drift_updates = drift_events  # the attribute `drift_events` lists the drifts seen
        self.n_bits = n_bits
        self.bigrams = bigrams
        self.prompt_weight = prompt_weight
        self.down_after = down_after
        self.failure_floor = failure_floor
        self.comeback_epsilon = comeback_epsilon
        self.probe_every = probe_every
        self.probe_max = probe_max
        self._bandit_params = bandit
        self.detector = detector
        obj = spec.objective
        scale = obj.quality_weight if obj.quality_weight > 0 else 1.0  # the bandit predicts quality
        featurizer = HashedFeaturizer(
            fields=spec.features.fields,
            n_bits=n_bits,
            prompt_key="prompt" if spec.features.prompt else None,
            bigrams=bigrams,
            prompt_weight=prompt_weight,
        )
        self.bandit = LinearBandit(
            spec.arms,
            featurizer,
            cost_weight=obj.cost_weight / scale,
            latency_weight=obj.latency_weight / scale,
            seed=seed,
            **{**BANDIT_DEFAULTS, **(bandit or {})},
        )
        bounds = spec.targets.threshold_bounds
        self.thresholds: dict[str, ThresholdLearner] = {
            gate: ThresholdLearner(
                **{
                    "threshold": initial,
                    "target_error_rate": spec.targets.max_unattended_error_rate,
                    "low": bounds.low,
                    "high": bounds.high,
                    **(threshold or {}),
                }
            )
            for gate, initial in spec.gates.items()
        }
        self.drift = DriftMonitor(**(detector or {}))
        self._events: list[DriftEvent] = []
        self._fails: dict[str, int] = {}
        self._failed_at: dict[str, float] = {}  # per arm: when its latest failed run was decided
        self._arm_n: dict[str, int] = {}
        self._n = 0
        self._reward_sum = 0.0
        self._recent: deque[float] = deque(maxlen=WINDOW)
        self._recent_arm: dict[str, deque[float]] = {}
        self._gain = SnipsGain()

    def _get_params(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "seed": self.seed,
            "bandit": self._bandit_params,
            "threshold": self.threshold,
            "drift_epsilon": self.drift_epsilon,
            "drift_events": self._drift_updates,
            "detector": self.detector,
            "n_bits": self.n_bits,
            "bigrams": self.bigrams,
            "prompt_weight": self.prompt_weight,
            "down_after": self.down_after,
            "failure_floor": self.failure_floor,
            "comeback_epsilon": self.comeback_epsilon,
            "probe_every": self.probe_every,
            "probe_max": self.probe_max,
        }

    # -- deciding ------------------------------------------------------------

    def decide(self, x: Mapping[str, Any], key: str) -> Choice:
        """The routing choice for features x (the run id as key), made by `policy()`: exactly
        what a replica serving this learner's published policy state decides."""
        return self.policy().decide(x, key, self.spec.arms)

    def policy(self) -> RoutingPolicy:
        """The decision object over the live bandit and the circuit breaker's probes (no copy):
        what a version's policy state holds, and what replicas decide with."""
        return RoutingPolicy(self.bandit, self._probes(), seed=self.seed)

    def _probes(self) -> dict[str, float]:
        """The arms that are down, each with its probability of being probed on a run."""
        out = {}
        for arm in self.spec.arms:
            n = self._fails.get(arm, 0)
            if n >= self.down_after:
                interval = min(float(self.probe_max), self.probe_every * 2.0 ** min(n - self.down_after, 30))
                out[arm] = 1.0 / max(1.0, interval)
        return out

    @property
    def down_arms(self) -> list[str]:
        """The arms taken out of routing after `down_after` failures in a row (only probed)."""
        return list(self._probes())

    def thresholds_now(self) -> dict[str, float]:
        """Each gate's current threshold, by gate step id."""
        return {gate: t.predict_one() for gate, t in self.thresholds.items()}

    # -- learning ------------------------------------------------------------

    def learn(self, ex: LearningExample) -> list[DriftEvent]:
        """Learn from one run's outcome (each outcome once); returns the drifts it revealed.

        Raises RefusedExample, having changed nothing, when the example holds a
        non-finite or absurd number (`example_problem`) or its reward is not finite.
        """
        reason = example_problem(ex)
        r = reward(
            self.spec.objective,
            quality=ex.quality,
            cost=ex.cost,
            latency_s=ex.latency_s,
            human_override=ex.human_override,
        ) if reason is None else float("nan")
        if reason is None and not math.isfinite(r):
            reason = f"reward is not finite: {r!r}"
        if reason is not None:
            raise RefusedExample(reason)
        arm = ex.arm
        p_now = self.probability(ex.x, arm)  # before learning it: an out-of-sample estimate
        self._arm_n[arm] = self._arm_n.get(arm, 0) + 1
        # an answer from a run decided after the arm's last failure: the arm is up (now)
        fresh = ex.decided_at is None or ex.decided_at > self._failed_at.get(arm, float("-inf"))
        if ex.confidence is None:  # the agent failed: no answer
            self._fails[arm] = self._fails.get(arm, 0) + 1
            if ex.decided_at is not None:
                self._failed_at[arm] = max(ex.decided_at, self._failed_at.get(arm, float("-inf")))
            if self._still_trusted(ex.x, arm):  # cost and latency unknown: not learned
                self.bandit.learn_one(ex.x, arm, ex.quality, None, None, ex.propensity)
        else:
            self.bandit.learn_one(ex.x, arm, ex.quality, ex.cost, ex.latency_s, ex.propensity)
        if ex.gate is not None and ex.confidence is not None and ex.correct is not None:
            gate = self.thresholds.get(ex.gate)
            if gate is not None:
                gate.learn_one(ex.confidence, ex.correct)
        found: list[DriftEvent] = []
        if ex.confidence is not None and fresh and self._fails.get(arm, 0) >= self.down_after:
            found.append(
                DriftEvent(
                    arm=arm,
                    at_update=self.drift.n_updates + 1,
                    arm_updates=self._arm_n[arm],
                    mean_before=0.0,
                    mean_after=r,
                    detector="availability",
                )
            )
        if ex.confidence is not None and fresh:
            self._fails[arm] = 0
        if self.drift.update(arm, r):
            found.append(self.drift.events[-1])
        for event in found:
            if event.detector == "availability":
                self.bandit.boost_exploration(self.comeback_epsilon, self._drift_updates, arm=event.arm)
            elif event.mean_after < event.mean_before:
                self.bandit.boost_exploration(self.drift_epsilon, self._drift_updates, arm=event.arm)
            else:  # the arm got better: learn it afresh, without exploring more
                self.bandit.boost_exploration(0.0, 0, arm=event.arm)
        self._events.extend(found)
        self._gain.learn_one(p_now, ex.propensity, r)
        self._n += 1
        self._reward_sum += r
        self._recent.append(r)
        self._recent_arm.setdefault(arm, deque(maxlen=WINDOW)).append(r)
        return found

    def probability(self, x: Mapping[str, Any], arm: str) -> float:
        """The probability this learner's policy, as it is now, would choose `arm` for x."""
        return self.policy().probability(x, arm, self.spec.arms)

    def start_evidence_window(self) -> None:
        """Start the off-policy gain estimate afresh (each version's evidence covers its own window)."""
        self._gain.reset()

    def _still_trusted(self, x: Mapping[str, Any], arm: str) -> bool:
        """Whether the router still predicts `arm` above the floor on x, or would choose it."""
        b = self.bandit
        if arm not in b.arms:
            return True
        f = b.featurize(x)
        i = b.arms.index(arm)
        scores = b.scores_featurized(f)
        return bool(b.predict_featurized(f)[i] > self.failure_floor or scores[i] >= scores.max())

    # -- inspection ----------------------------------------------------------

    @property
    def n_updates(self) -> int:
        """Outcomes learned from."""
        return self._n

    @property
    def drift_events(self) -> list[DriftEvent]:
        """Every drift seen, in order."""
        return list(self._events)

    def evidence(self) -> dict[str, float]:
        """Flat figures for a version's evidence (MLflow metrics)."""
        out: dict[str, float] = {
            "outcomes": float(self._n),
            "reward_mean": self._reward_sum / self._n if self._n else 0.0,
            "reward_mean_recent": sum(self._recent) / len(self._recent) if self._recent else 0.0,
            "drift_events": float(len(self._events)),
            "exploration": float(self.bandit.exploration),
        }
        gain, se, n = self._gain.predict_one()
        out["estimated_gain"], out["estimated_gain_se"], out["estimated_gain_n"] = gain, min(se, 1e6), float(n)
        for arm, rewards in self._recent_arm.items():
            out[f"reward_mean.{arm}"] = sum(rewards) / len(rewards)
            out[f"outcomes_recent.{arm}"] = float(len(rewards))
        for gate, t in self.thresholds.items():
            out[f"threshold.{gate}"] = t.predict_one()
            out[f"unattended_error.{gate}"] = t.error_rate()
            out[f"human_share.{gate}"] = t.human_share()
        return out

    def __repr__(self) -> str:
        return f"WorkflowLearner(spec={self.spec.name!r}, seed={self.seed}, n_updates={self._n})"
