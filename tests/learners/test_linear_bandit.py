"""The bandit's importance weights: what an outcome weighs, and that the weight counts."""

from __future__ import annotations


import pytest

from flywheel.learners.adagrad import AdaGrad
from flywheel.learners.laplace import Laplace

from flywheel.learners.features import HashedFeaturizer
from flywheel.learners.linear_bandit import LinearBandit

X = {"prompt": "prove the theorem"}


def _bandit(**kw) -> LinearBandit:
    return LinearBandit(["weak", "strong"], HashedFeaturizer(n_bits=10), seed=1, **kw)


def test_the_weight_is_one_without_a_clip_and_the_clipped_inverse_propensity_with_one() -> None:
    assert _bandit().importance_weight(0.01) == 1.0
    b = _bandit(importance_clip=5.0)
    assert b.importance_weight(0.5) == 2.0
    assert b.importance_weight(0.01) == 5.0
    assert b.importance_weight(1.0) == 1.0
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="propensity"):
            b.importance_weight(bad)
    with pytest.raises(ValueError, match="importance_clip"):
        _bandit(importance_clip=-1.0)


@pytest.mark.parametrize("solver", [Laplace(learning_rate=1.0), AdaGrad(learning_rate=0.5)], ids=["laplace", "adagrad"])
def test_a_rarely_chosen_outcome_moves_the_estimate_more(solver) -> None:
    kw = {"solver": solver, "shared": False}
    start = _bandit(**kw).predict_one(X)["strong"]
    plain, weighted = _bandit(**kw), _bandit(importance_clip=5.0, **kw)
    for b in (plain, weighted):
        b.learn_one(X, "strong", quality=0.0, cost=0.0, propensity=0.25)
    assert weighted.predict_one(X)["strong"] < plain.predict_one(X)["strong"] < start
    assert weighted.predict_one(X)["weak"] == plain.predict_one(X)["weak"]  # only its arm's model moves


def test_laplace_weight_two_is_close_to_learning_the_outcome_twice() -> None:
    kw = {"solver": Laplace(learning_rate=1.0), "shared": False}
    twice, weighted = _bandit(**kw), _bandit(importance_clip=5.0, **kw)
    twice.learn_one(X, "strong", 0.0)
    twice.learn_one(X, "strong", 0.0)
    weighted.learn_one(X, "strong", 0.0, propensity=0.5)
    assert weighted.predict_one(X)["strong"] == pytest.approx(twice.predict_one(X)["strong"], abs=0.02)
    assert weighted.predict_one(X)["strong"] < 0.4


def test_learn_many_weighs_each_outcome_by_its_propensity() -> None:
    f = HashedFeaturizer(n_bits=10)
    feats = [f.transform_one(X)] * 2
    a, b = _bandit(importance_clip=5.0), _bandit(importance_clip=5.0)
    a.learn_many(feats, ["strong", "weak"], [0.0, 1.0], [0.0, 0.0], propensity=[0.2, 1.0])
    b.learn_many(feats, ["strong", "weak"], [0.0, 1.0], [0.0, 0.0])
    assert a.predict_one(X)["strong"] < b.predict_one(X)["strong"]
