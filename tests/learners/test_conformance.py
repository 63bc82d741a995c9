"""One conformance suite over every learner in flywheel/learners (River's protocol).

For each learner: its constructor arguments are attributes of the same name and
value, and stay so while it learns; everything else it keeps starts with `_`;
no argument defaults to a mutable object; `clone` gives a fresh instance from the
same parameters; a round trip through the safe state format continues exactly like the original; the
same seed gives the same decisions on a seeded stream (and, where there is a
seed, another seed other decisions); it has learn_one/update and predict_one/decide.

Every class under flywheel/learners (outside the simulator) with a `learn_one`,
`update` or `decide` method must have a case here: a new learner fails this
suite until it is added.
"""

from __future__ import annotations

import ast
import copy
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from flywheel.learners.base import clone, params
from flywheel.learners.cost_model import CostModel
from flywheel.learners.drift import DriftMonitor
from flywheel.learners.examples import LearningExample
from flywheel.learners.features import HashedFeaturizer
from flywheel.learners.laplace import Laplace
from flywheel.learners.linear_bandit import LinearBandit
from flywheel.learners.off_policy import SnipsGain
from flywheel.learners.routing_policy import RoutingPolicy
from flywheel.learners.softmax import SoftmaxPolicy
from flywheel.learners.state import CLASSES, load, save
from flywheel.learners.threshold import ThresholdLearner
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.workflows.loading import load_model
from flywheel.workflows.routing import uniform
from flywheel.workflows.spec import WorkflowSpec

ROOT = Path(__file__).resolve().parents[2]
LEARNERS = ROOT / "flywheel" / "learners"
SPEC = load_model(ROOT / "configs" / "workflows" / "ticket_triage.yaml", WorkflowSpec)
PRODUCTS = ["billing", "technical", "account", "shipping"]
ARMS = ["fast", "balanced", "strong", "frontier"]


def _u(*parts: object) -> float:
    return uniform(1234, ":".join(map(str, parts)))


# -- one step of a seeded stream per learner: predict/decide, then learn; returns what it predicted


def _bandit_step(b: LinearBandit, i: int) -> Any:
    x = {"prompt": f"word{i % 7} topic{i % 3}"}
    c = b.decide(x, key=f"k{i}")
    b.learn_one(x, c.arm, quality=float(_u(i, c.arm) < (0.9 if c.arm == "b" else 0.5)), cost=0.1, propensity=c.propensity)
    return c.arm, c.propensity, tuple(sorted(c.scores.items()))


def _threshold_step(t: ThresholdLearner, i: int) -> Any:
    c = _u("c", i)
    t.learn_one(c, _u("ok", i) < c)
    return t.predict_one()


def _drift_step(d: DriftMonitor, i: int) -> Any:
    arm = "a" if i % 2 else "b"
    drifted = d.update(arm, float(_u("r", i) < (0.9 if i < 400 else 0.3)))
    return drifted, d.predict_one(arm)


def _workflow_step(w: WorkflowLearner, i: int) -> Any:
    x = {"product": PRODUCTS[i % 4], "customer_tier": "pro", "channel": "chat", "prompt": f"ticket about {i % 5}"}
    c = w.decide(x, f"run-{i}")
    ok = _u("q", i, c.arm) < (0.3 if c.arm == "frontier" and i < 300 else 0.85)
    failed = c.arm == "frontier" and i < 150
    w.learn(LearningExample(x, c.arm, c.propensity, 0.0 if failed else float(ok), 0.001, 1.0,
                            None if failed else _u("conf", i), None if failed else ok, "confidence"))
    return c.arm, c.propensity, tuple(sorted(w.thresholds_now().items()))


def _cost_step(m: CostModel, i: int) -> Any:
    while m.n_rows < 2:
        m.add_row()
    z = [1.0, _u("len", i), float(i % 3)]
    before = m.predict_one(z).round(9).tolist()
    m.learn_one(z, i % 2, cost=0.001 * z[1] * (1 + i % 2), latency_s=0.5 + z[1] + (i % 2))
    return before


def _softmax_step(p: SoftmaxPolicy, i: int) -> Any:
    c = p.decide({}, f"k{i}", ["a", "b", "c"])
    return c.arm, c.propensity


def _routing_step(p: RoutingPolicy, i: int) -> Any:
    c = p.decide({"prompt": f"word{i % 7}"}, f"k{i}", ["a", "b", "c"])
    return c.arm, c.propensity


def _gain_step(g: SnipsGain, i: int) -> Any:
    arm = int(_u("arm", i) < 0.5)
    g.learn_one(target_probability=0.9 if arm else 0.1, logged_propensity=0.5, reward=float(_u("r", i) < 0.3 + 0.4 * arm))
    return g.predict_one()


@dataclass
class Case:
    cls: type
    kwargs: dict[str, Any]  # every parameter, none at its default
    step: Callable[[Any, int], Any]
    seeded: bool
    composed: frozenset[str] = frozenset()  # public attributes that are composed learners, not parameters
    renamed: frozenset[str] = frozenset()  # parameters whose attribute name holds something else (see _get_params)


CASES = [
    Case(LinearBandit, dict(arms=["a", "b", "c"], featurizer=HashedFeaturizer(n_bits=8), cost_weight=0.1,
                            latency_weight=0.01, solver=Laplace(learning_rate=0.3, prior_var=2.0, forgetting=0.001), shared=False, epsilon=0.3, epsilon_min=0.05,
                            epsilon_half_life=100, seed=5, ucb=0.5,
                            cost_model="mean", explore_z=1.5, importance_clip=4.0),
         _bandit_step, seeded=True),
    Case(ThresholdLearner, dict(threshold=0.6, target_error_rate=0.1, low=0.2, high=0.9, n_bins=20, half_life=500,
                                min_samples=50, z=1.0), _threshold_step, seeded=False),
    Case(DriftMonitor, dict(delta=0.01, clock=4, min_window_length=7, grace_period=20), _drift_step, seeded=False),
    Case(WorkflowLearner, dict(spec=SPEC, seed=3, bandit={"epsilon": 0.25}, threshold={"min_samples": 20},
                               drift_epsilon=0.2, drift_events=100, detector={"delta": 0.01}, n_bits=10,
                               bigrams=True, prompt_weight=0.5, down_after=4, failure_floor=0.4, comeback_epsilon=0.35,
                               probe_every=20, probe_max=500),
         _workflow_step, seeded=True, composed=frozenset({"bandit", "thresholds", "drift"}),
         renamed=frozenset({"bandit", "drift_events"})),
    Case(SnipsGain, dict(window=300), _gain_step, seeded=False),
    Case(CostModel, dict(n_features=3, forgetting=0.99, ridge=0.01), _cost_step, seeded=False),
    Case(RoutingPolicy, dict(bandit=LinearBandit(["a", "b", "c"], HashedFeaturizer(n_bits=8), epsilon=0.3, seed=2),
                             probes={"c": 0.2}, seed=4), _routing_step, seeded=True),
    Case(SoftmaxPolicy, dict(weights={"a": 1.0, "b": 0.2, "c": -0.5}, temperature=0.7, seed=9), _softmax_step,
         seeded=True),
]
IDS = [c.cls.__name__ for c in CASES]
N = 600


def _run(obj: Any, step: Callable[[Any, int], Any], start: int, n: int) -> list[Any]:
    return [step(obj, i) for i in range(start, start + n)]


def _same(a: Any, b: Any) -> bool:
    """Equal values; objects without their own __eq__ compare by type and attributes."""
    if a is b:
        return True
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a).__eq__ is object.__eq__ and hasattr(a, "__dict__"):
        return type(a) is type(b) and _same(dict(vars(a)), dict(vars(b)))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool((a == b).all())
    return bool(a == b)


def test_every_learner_class_has_a_case() -> None:
    found = set()
    for path in LEARNERS.rglob("*.py"):
        if "simulator" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                assigned = {t.id for n in node.body if isinstance(n, ast.Assign) for t in n.targets
                            if isinstance(t, ast.Name)}
                if (methods | assigned) & {"learn_one", "update", "decide"}:
                    found.add(node.name)
    assert found == set(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_parameters_are_stored_as_given_and_learned_state_is_private(case: Case) -> None:
    obj = case.cls(**case.kwargs)
    sig = inspect.signature(case.cls.__init__)
    names = [n for n in sig.parameters if n != "self"]
    assert set(names) == set(case.kwargs)
    for name in names:
        default = sig.parameters[name].default
        assert not isinstance(default, (list, dict, set)), f"{name}: mutable default"
        assert not _same(case.kwargs[name], default), f"{name}: the case must not use the default"
    given = copy.deepcopy(case.kwargs)
    assert _same(params(obj), given)
    for name in set(names) - case.renamed:
        assert _same(getattr(obj, name), given[name]), name
    public = {k for k in vars(obj) if not k.startswith("_")}
    assert public <= (set(names) - case.renamed) | case.composed
    _run(obj, case.step, 0, N)  # learning leaves the parameters alone
    assert _same(params(obj), given)
    for name in set(names) - case.renamed:
        assert _same(getattr(obj, name), given[name]), name
    assert {k for k in vars(obj) if not k.startswith("_")} == public


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_clone_is_a_fresh_instance_with_the_same_parameters(case: Case) -> None:
    obj = case.cls(**case.kwargs)
    learned = _run(obj, case.step, 0, N)
    fresh = clone(obj)
    assert type(fresh) is case.cls and fresh is not obj
    assert _same(params(fresh), params(obj))
    assert _run(fresh, case.step, 0, N) == learned  # nothing learned carried over


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_safe_state_round_trip_continues_exactly(case: Case) -> None:
    obj = case.cls(**case.kwargs)
    _run(obj, case.step, 0, N // 2)
    if case.cls.__name__ not in CLASSES:  # SoftmaxPolicy: no learned state, never saved
        assert not any(k.startswith("_") for k in vars(obj))
        return
    copy_ = load(save(obj, "test"), "test")
    assert _run(copy_, case.step, N // 2, N // 2) == _run(obj, case.step, N // 2, N // 2)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_seed_same_decisions(case: Case) -> None:
    a, b = case.cls(**case.kwargs), case.cls(**case.kwargs)
    first = _run(a, case.step, 0, N)
    assert first == _run(b, case.step, 0, N)
    if case.seeded:
        other = case.cls(**{**case.kwargs, "seed": case.kwargs["seed"] + 1})
        assert _run(other, case.step, 0, N) != first


# Each learner's protocol: the method it learns with (None: it learns nothing) and the one it answers with.
PROTOCOL: dict[type, tuple[str | None, str]] = {
    LinearBandit: ("learn_one", "decide"),
    ThresholdLearner: ("learn_one", "predict_one"),
    DriftMonitor: ("learn_one", "predict_one"),
    WorkflowLearner: ("learn", "decide"),
    SnipsGain: ("learn_one", "predict_one"),
    CostModel: ("learn_one", "predict_one"),
    SoftmaxPolicy: (None, "decide"),  # a fixed policy: the initial routing, nothing to learn
    RoutingPolicy: (None, "decide"),  # what replicas serve: a version's learned state, it learns nothing itself
}
LEARN_VERBS = ("learn_one", "learn", "update")


def test_every_case_states_its_protocol() -> None:
    assert set(PROTOCOL) == {c.cls for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_protocol_methods_exist(case: Case) -> None:
    obj = case.cls(**case.kwargs)
    learns, answers = PROTOCOL[case.cls]
    if learns is None:
        assert [v for v in LEARN_VERBS if hasattr(obj, v)] == []
    else:
        assert callable(getattr(obj, learns, None)), f"{case.cls.__name__}.{learns}"
    assert callable(getattr(obj, answers, None)), f"{case.cls.__name__}.{answers}"
    assert case.cls.__doc__ and ">>>" in case.cls.__doc__  # a doctest example
