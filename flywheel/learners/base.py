"""What every learner shares: its parameters as given, and a fresh copy made from them.

A learner keeps each constructor argument as an attribute of the same name and
value, and everything it learns under a `_` name (River's convention). Its
parameters are then the constructor's signature read back off the instance,
which is what `params` does; `clone` builds a fresh, unlearned instance from
them. A learner whose public attribute of a parameter's name holds something
else (a composed learner built from that argument) defines `_get_params()`.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, TypeVar

T = TypeVar("T")


def params(obj: object) -> dict[str, Any]:
    """The constructor arguments of `obj`, as given (read back from the instance).

    >>> from flywheel.learners.softmax import SoftmaxPolicy
    >>> params(SoftmaxPolicy({"a": 1.0}, temperature=2.0, seed=3))
    {'weights': {'a': 1.0}, 'temperature': 2.0, 'seed': 3}
    """
    own = getattr(obj, "_get_params", None)
    if callable(own):
        return dict(own())
    out: dict[str, Any] = {}
    for name, p in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = getattr(obj, name)
    return out


def clone(obj: T) -> T:
    """A fresh instance of `obj`'s class from (deep copies of) its parameters: nothing learned.

    >>> from flywheel.learners.threshold import ThresholdLearner
    >>> t = ThresholdLearner(threshold=0.7, target_error_rate=0.05)
    >>> for _ in range(300):
    ...     t.learn_one(0.99, True)
    >>> fresh = clone(t)
    >>> fresh.n_seen, t.n_seen, fresh.threshold
    (0, 300, 0.7)
    """
    return type(obj)(**copy.deepcopy(params(obj)))  # type: ignore[call-arg]


def described(value: Any) -> Any:
    """Parameters as JSON-ready data: a learner or solver becomes its class name and its parameters.

    >>> from flywheel.learners.laplace import Laplace
    >>> described({"solver": Laplace(prior_var=0.5), "ucb": 0.5})
    {'solver': {'name': 'Laplace', 'learning_rate': 1.0, 'prior_var': 0.5, 'forgetting': 0.0}, 'ucb': 0.5}
    """
    if isinstance(value, dict):
        return {k: described(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [described(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"name": type(value).__name__, **described(params(value))}
