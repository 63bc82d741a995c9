"""What the engine needs from a routing policy, without knowing which learner made it."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence


@dataclass(slots=True, frozen=True)
class Choice:
    """One routing choice: the arm, its probability under the policy, every arm's score."""

    arm: str
    propensity: float
    scores: dict[str, float]


class Policy(Protocol):
    """A routing policy. `key` makes the choice reproducible (the run id)."""

    def decide(self, x: Mapping[str, Any], key: str, arms: Sequence[str]) -> Choice: ...


def uniform(seed: int, key: str) -> float:
    """A uniform number in [0, 1) that depends only on (seed, key): same run, same draw.

    >>> uniform(7, "run-1") == uniform(7, "run-1"), 0.0 <= uniform(7, "run-1") < 1.0
    (True, True)
    >>> uniform(7, "run-1") != uniform(8, "run-1")
    True
    """
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return (struct.unpack("<Q", digest)[0] >> 11) * (1.0 / (1 << 53))


def sample(probabilities: Mapping[str, float], u: float) -> str:
    """The arm whose cumulative probability first exceeds u (inverse CDF)."""
    total = 0.0
    last = ""
    for arm, p in probabilities.items():
        total += p
        last = arm
        if u < total:
            return arm
    return last
