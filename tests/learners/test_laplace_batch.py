"""Laplace.learn_many (a mini-batch's steps solved together) against one Newton step after the other."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from flywheel.learners.features import HashedFeaturizer
from flywheel.learners.laplace import Laplace, _joint_steps, newton_step
from flywheel.learners.linear_bandit import LinearBandit
from flywheel.learners.workflow_learner import BANDIT_DEFAULTS

ARMS = ["weak", "mid", "strong"]
P_RIGHT = {"weak": (0.85, 0.2), "mid": (0.85, 0.5), "strong": (0.9, 0.9)}  # (easy, hard)


def _bandit(text_stats: bool, **kw: object) -> LinearBandit:
    args = {**copy.deepcopy(BANDIT_DEFAULTS), **kw}
    return LinearBandit(ARMS, HashedFeaturizer(n_bits=12, text_stats=text_stats), cost_weight=0.2, seed=7, **args)


def _logged(n: int, seed: int = 1) -> tuple[list[dict], list[str], list[float]]:
    rng = random.Random(seed)
    xs, arms, q = [], [], []
    for i in range(n):
        hard = rng.random() < 0.5
        xs.append({"prompt": ("prove the theorem on " if hard else "say hello to ") + rng.choice("abcdef") * rng.randint(1, 4)})
        arm = rng.choice(ARMS)
        arms.append(arm)
        q.append(float(rng.random() < P_RIGHT[arm][hard]))
    return xs, arms, q


@pytest.mark.parametrize("text_stats", [False, True])
@pytest.mark.parametrize("shared", [True, False])
def test_a_batched_stream_predicts_and_chooses_as_the_sequential_one(text_stats: bool, shared: bool) -> None:
    xs, arms, q = _logged(3000)
    seq, bat = _bandit(text_stats, shared=shared), _bandit(text_stats, shared=shared)
    feats = [seq.featurize(x) for x in xs]
    for f, a, y in zip(feats, arms, q):
        seq.learn_featurized(f, a, y, 0.1 if a == "strong" else 0.0)
    for i in range(0, len(feats), 500):  # the loop's batches
        part = slice(i, i + 500)
        bat.learn_many(feats[part], arms[part], q[part], [0.1 if a == "strong" else 0.0 for a in arms[part]])
    probes = [{"prompt": f"{w} {c * k}"} for w in ("prove the theorem on", "say hello to") for c in "abcdef"
              for k in (1, 3)]
    for x in probes:
        ps, pb = seq.predict_one(x), bat.predict_one(x)
        assert max(abs(ps[a] - pb[a]) for a in ARMS) < 0.03, (x, ps, pb)
        assert seq.decide(x, key="k").arm == bat.decide(x, key="k").arm
    f = seq.featurize(probes[0])  # the posterior's uncertainty too
    vs, vb = (b.solver.logit_var(b._s, f, b.shared) for b in (seq, bat))
    assert np.allclose(vs, vb, rtol=0.25)
    assert bat.n_updates == seq.n_updates == 3000


def test_one_outcome_alone_takes_learns_newton_step() -> None:
    mu, var, q = np.array([0.4]), np.array([[2.5]]), np.array([1.0])
    a, p = _joint_steps(mu, var, q, np.ones(1))
    assert a[0] == pytest.approx(newton_step(0.4, 2.5, 1.0), abs=1e-9)
    assert p[0] == pytest.approx(1 / (1 + np.exp(-(0.4 - a[0] * 2.5))))


# forgetting: one step after the other tracks its last ~1/forgetting touches of a slot, so with a large
# forgetting the two differ by that window's noise; at 0.002 the window spans the stream
@pytest.mark.parametrize("kw", [{"importance_clip": 5.0}, {"solver": Laplace(forgetting=0.002)}])
def test_importance_weights_and_forgetting_act_as_one_step_after_the_other(kw: dict) -> None:
    xs, arms, q = _logged(1500, seed=2)
    props = [0.25 if a == "strong" else 0.9 for a in arms]
    seq, bat, plain = _bandit(False, **copy.deepcopy(kw)), _bandit(False, **copy.deepcopy(kw)), _bandit(False)
    feats = [seq.featurize(x) for x in xs]
    for f, a, y, pr in zip(feats, arms, q, props):
        seq.learn_featurized(f, a, y, 0.0, propensity=pr)
    for i in range(0, 1500, 500):
        part = slice(i, i + 500)
        bat.learn_many(feats[part], arms[part], q[part], [0.0] * 500, propensity=props[part])
        plain.learn_many(feats[part], arms[part], q[part], [0.0] * 500, propensity=props[part])
    assert np.allclose(bat._s.g, seq._s.g, rtol=0.2)  # evidence counted alike
    assert not np.allclose(bat._s.g, plain._s.g, rtol=0.05)  # and not as without the setting
    x = {"prompt": "prove the theorem on aa"}
    ps, pb = seq.predict_one(x), bat.predict_one(x)
    assert max(abs(ps[a] - pb[a]) for a in ARMS) < 0.03
