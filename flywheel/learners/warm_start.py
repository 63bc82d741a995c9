"""Warm start: a workflow's learner fitted offline, from a wide table or from logged decisions.

Two sources:

- a wide table (RouterBench format: every model's outcome on every prompt): full
  information. Every (prompt, model) outcome is learned, in mini-batches
  (`LinearBandit.learn_many`). Its evidence is the fitted router's value measured
  exactly on the last HOLDOUT of the rows before they are learned: the mean over those
  rows of sum_a pi(a|x) reward(x, a), beside the best single arm's.
- logged decisions with their propensities (flywheel.learners.logged: another
  deployment's `flywheel export`): bandit feedback, learned off-policy: each outcome
  weighs min(WARM_CLIP, 1 / propensity) (the learner's own `importance_clip` when it
  has one), through `WorkflowLearner.learn` so gates and thresholds learn too. Its
  evidence is the SNIPS estimate (flywheel.learners.estimators) of the fitted policy's
  reward on the last HOLDOUT of the rows, in file order, before they are learned,
  with its 95% interval, beside the logging policy's own mean reward there.

Either way the rows held out are learned last, so the state returned has learned every row.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from flywheel.learners.estimators import SNIPS
from flywheel.learners.examples import LearningExample, RefusedExample
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.workflows.reward import reward

WARM_CLIP = 10.0
"""Largest importance weight of a logged outcome (1 / propensity, clipped), when the learner has none."""
HOLDOUT = 0.2
"""Share of the rows, the last ones, on which the fit is measured before they are learned."""
BATCH = 500
Z95 = 1.959963984540054


def fit_wide(learner: WorkflowLearner, xs: Sequence[dict[str, Any]], models: Sequence[str],
             quality: np.ndarray, cost: np.ndarray) -> dict[str, float]:
    """Learn every model's outcome on every row (quality in [0, 1]); returns the evidence.

    Models that are not arms of the learner's workflow are left out; none in common is a ValueError.
    """
    arms = learner.spec.arms
    used = [j for j, m in enumerate(models) if m in arms]
    if not used:
        raise ValueError(f"models: none of the table's models ({', '.join(models)}) is an arm of "
                         f"{learner.spec.name} ({', '.join(arms)})")
    n = len(xs)
    if n < 2:
        raise ValueError("rows: a warm start needs at least 2 rows")
    q, c = np.asarray(quality, dtype=float)[:, used], np.asarray(cost, dtype=float)[:, used]
    names = [models[j] for j in used]
    bandit = learner.bandit
    feats = [bandit.featurize(x) for x in xs]
    split = n - max(1, int(HOLDOUT * n))
    learn_wide_rows(bandit, feats[:split], names, q[:split], c[:split])
    obj = learner.spec.objective
    r = np.array([[reward(obj, quality=float(q[i, j]), cost=float(c[i, j]), latency_s=0.0)
                   for j in range(len(names))] for i in range(split, n)])
    pi = np.array([[learner.probability(xs[i], a) for a in names] for i in range(split, n)])
    value = (pi * r).sum(axis=1)
    best = int(np.argmax(r.mean(axis=0)))
    learn_wide_rows(bandit, feats[split:], names, q[split:], c[split:])
    mean, se = _mean_se(value)
    gain, gain_se = _mean_se(value - r[:, best])
    return {
        "warm_start_rows": float(n),
        "warm_start_outcomes": float(n * len(names)),
        "outcomes": float(n * len(names)),
        "holdout_rows": float(n - split),
        "estimated_reward": mean,
        "estimated_reward_low": mean - Z95 * se,
        "estimated_reward_high": mean + Z95 * se,
        "best_arm_reward": float(r[:, best].mean()),
        "estimated_gain": gain,
        "estimated_gain_se": gain_se,
        "estimated_gain_n": float(n - split),
    }


def learn_wide_rows(bandit: Any, feats: list, names: list[str], q: np.ndarray, c: np.ndarray) -> None:
    """Every (row, model) outcome, BATCH at a time."""
    m = len(names)
    pairs = [(i, j) for i in range(len(feats)) for j in range(m)]
    for start in range(0, len(pairs), BATCH):
        part = pairs[start:start + BATCH]
        bandit.learn_many([feats[i] for i, _ in part], [names[j] for _, j in part],
                          [float(q[i, j]) for i, j in part], [float(c[i, j]) for i, j in part])


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    n = len(v)
    mean = float(v.mean())
    return mean, float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf


def fit_logged(learner: WorkflowLearner, examples: Sequence[LearningExample]) -> dict[str, float]:
    """Learn logged outcomes off-policy (importance-weighted by their propensities); returns the evidence.

    Outcomes of arms the workflow does not have are skipped; those the learner refuses
    (non-finite or absurd numbers) are skipped and counted.
    """
    arms = set(learner.spec.arms)
    usable = [ex for ex in examples if ex.arm in arms]
    if len(usable) < 2:
        raise ValueError(f"rows: {len(usable)} logged outcomes of {learner.spec.name}'s arms "
                         f"({', '.join(learner.spec.arms)}); a warm start needs at least 2")
    split = len(usable) - max(1, int(HOLDOUT * len(usable)))
    bandit = learner.bandit
    clip = bandit.importance_clip
    bandit.importance_clip = clip or WARM_CLIP
    try:
        refused = _learn_examples(learner, usable[:split])
        snips, logged = SNIPS(), []
        obj = learner.spec.objective
        for ex in usable[split:]:
            r = reward(obj, quality=ex.quality, cost=ex.cost, latency_s=ex.latency_s)
            if math.isfinite(r):
                snips.add(learner.probability(ex.x, ex.arm), ex.propensity, r)
                logged.append(r)
        refused += _learn_examples(learner, usable[split:])
    finally:
        bandit.importance_clip = clip
    est = snips.estimate()
    logged_mean = float(np.mean(logged)) if logged else 0.0
    return {
        "warm_start_rows": float(len(examples)),
        "outcomes": float(len(usable) - refused),
        "skipped_rows": float(len(examples) - len(usable)),
        "refused_rows": float(refused),
        "holdout_rows": float(len(usable) - split),
        "estimated_reward": est.value,
        "estimated_reward_low": est.low,
        "estimated_reward_high": est.high,
        "logged_reward": logged_mean,
        "estimated_gain": est.value - logged_mean,
        "estimated_gain_se": min(est.se, 1e6),
        "estimated_gain_n": float(est.n),
        "importance_clip": float(clip or WARM_CLIP),
    }


def _learn_examples(learner: WorkflowLearner, examples: Sequence[LearningExample]) -> int:
    """Learn each example in order; returns how many were refused."""
    refused = 0
    for ex in examples:
        try:
            learner.learn(ex)
        except RefusedExample:
            refused += 1
    return refused
