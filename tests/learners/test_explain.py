"""Why a learned router chose: scores as it decided, the lead in parts, the deciding features named."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from flywheel.learners.explain import explain, feature_names
from flywheel.learners.features import HashedFeaturizer
from flywheel.learners.linear_bandit import LinearBandit
from flywheel.learners.workflow_learner import BANDIT_DEFAULTS


@pytest.fixture(scope="module")
def bandit() -> LinearBandit:
    """Hard prompts ('prove the theorem') need the strong arm; the tier does not matter."""
    b = LinearBandit(["weak", "strong"], HashedFeaturizer(fields=["tier"], n_bits=12), cost_weight=0.3, seed=7,
                     **copy.deepcopy(BANDIT_DEFAULTS))
    rng = random.Random(1)
    for i in range(2000):
        hard = rng.random() < 0.5
        x = {"tier": rng.choice(["pro", "free"]), "prompt": "prove the theorem" if hard else "say hello"}
        c = b.decide(x, key=str(i))
        ok = rng.random() < (0.9 if c.arm == "strong" or not hard else 0.2)
        b.learn_one(x, c.arm, float(ok), cost=1.0 if c.arm == "strong" else 0.0, propensity=c.propensity)
    return b


def test_names_are_recomputed_from_the_input() -> None:
    fz = HashedFeaturizer(fields=["tier", "n"], n_bits=16, text_stats=True)
    x = {"tier": "pro", "n": 3, "prompt": "Reset my Password"}
    names = feature_names(fz, x)
    idx = fz.transform_one(x)[0]
    assert set(idx.tolist()) <= set(names)  # every slot the input touches is named
    assert {"tier=pro", "n", "prompt:reset", "prompt:my password", "constant", "text.chars"} <= set(names.values())


def test_the_explanation_matches_the_decision_and_names_what_decided_it(bandit: LinearBandit) -> None:
    x = {"tier": "pro", "prompt": "prove the theorem"}
    choice = bandit.decide(x, key="z")
    ex = explain(bandit, x, choice.arm, k=4)
    assert ex["arm"] == "strong" == choice.arm and ex["runner_up"] == "weak"
    assert {a: v["score"] for a, v in ex["arms"].items()} == pytest.approx(choice.scores)
    lead = ex["lead"]
    assert lead["score"] == pytest.approx(lead["quality"] + lead["cost"] + lead["latency"] + lead["optimism"])
    top = [c["feature"] for c in ex["contributions"]]
    assert len(top) == 4 and any(f.startswith("prompt:prove") or f == "prompt:theorem" for f in top)
    assert all(c["contribution"] > 0 for c in ex["contributions"])  # all push towards strong here
    assert not any(f.startswith("tier=") for f in top[:2])  # the tier does not decide
    f = bandit.featurize(x)  # the per-feature differences add up to the logits' difference
    logits = bandit._w[:, f[0]] @ f[1]
    assert lead["logit"] == pytest.approx(logits[2] - logits[1])


def test_an_unknown_arm_is_refused(bandit: LinearBandit) -> None:
    with pytest.raises(ValueError, match="arm"):
        explain(bandit, {"prompt": "x"}, "nope")
    assert np.isfinite(explain(bandit, {"prompt": "say hello"}, "weak")["lead"]["score"])
