"""Learned state in the safe format (flywheel.registry.state_codec): what versions carry.

A version carries two states: the learner's (a WorkflowLearner: everything it
learned, to restart from) and the policy's (a RoutingPolicy: what replicas decide
with). Both are arrays plus a JSON document; loading builds only the classes named
here. River's ADWIN keeps its window in native code: its own serialized bytes (data,
read by its deserializer, not by pickle) travel as an array.

>>> from flywheel.learners.features import HashedFeaturizer
>>> from flywheel.learners.linear_bandit import LinearBandit
>>> policy = RoutingPolicy(LinearBandit(["a", "b"], HashedFeaturizer(n_bits=8)), {"b": 0.5})
>>> loads_policy(dumps_policy(policy)).probes
{'b': 0.5}
>>> loads_learner(dumps_policy(policy))
Traceback (most recent call last):
...
flywheel.registry.state_codec.UnsafeState: state: holds a 'routing-policy', not a 'workflow-learner'
"""

from __future__ import annotations

from typing import Any

import numpy as np
from river.drift import ADWIN

from flywheel.learners.adagrad import AdaGrad, AdaGradState
from flywheel.learners.cost_model import CostModel
from flywheel.learners.drift import DriftEvent, DriftMonitor
from flywheel.learners.features import HashedFeaturizer, SentenceEmbedder
from flywheel.learners.laplace import Laplace, LaplaceState
from flywheel.learners.linear_bandit import LinearBandit
from flywheel.learners.off_policy import SnipsGain
from flywheel.learners.routing_policy import RoutingPolicy
from flywheel.learners.threshold import ThresholdLearner
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.registry.state_codec import Codec, UnsafeState, decode, encode
from flywheel.workflows.spec import WorkflowSpec

LEARNER, POLICY = "workflow-learner", "routing-policy"
CLASSES: dict[str, type] = {
    c.__name__: c
    for c in (WorkflowLearner, LinearBandit, HashedFeaturizer, CostModel, ThresholdLearner, DriftMonitor,
              DriftEvent, SnipsGain, RoutingPolicy, SentenceEmbedder, WorkflowSpec, Laplace, LaplaceState,
              AdaGrad, AdaGradState)
}
_ADWIN_PARAMS = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")


def _save_adwin(d: ADWIN) -> dict[str, Any]:
    return {
        "params": {k: getattr(d, k) for k in _ADWIN_PARAMS},
        "drift_detected": bool(d.drift_detected),
        "window": np.frombuffer(d._helper.__getstate__(), dtype=np.uint8),
    }


def _load_adwin(tree: dict[str, Any]) -> ADWIN:
    d = ADWIN(**tree["params"])
    d._helper.__setstate__(tree["window"].tobytes())
    d._drift_detected = bool(tree["drift_detected"])
    return d


_ADWIN = Codec(_save_adwin, _load_adwin)


def save(obj: Any, kind: str) -> bytes:
    """Any learner of this package (or a tree of them) in the safe format, labelled `kind`."""
    return encode(obj, kind=kind, codecs={ADWIN: ("adwin", _ADWIN)})


def load(data: bytes, kind: str) -> Any:
    """What `save` wrote with this `kind`; refuses anything else (UnsafeState)."""
    return decode(data, CLASSES, kind=kind, codecs={"adwin": _ADWIN})


def dumps_learner(learner: WorkflowLearner) -> bytes:
    return save(learner, LEARNER)


def loads_learner(data: bytes) -> WorkflowLearner:
    return _typed(load(data, LEARNER), WorkflowLearner)


def dumps_policy(policy: RoutingPolicy) -> bytes:
    return save(policy, POLICY)


def loads_policy(data: bytes) -> RoutingPolicy:
    return _typed(load(data, POLICY), RoutingPolicy)


def _typed(obj: Any, cls: type) -> Any:
    if not isinstance(obj, cls):
        raise UnsafeState(f"state: holds a {type(obj).__name__}, not a {cls.__name__}")
    return obj
