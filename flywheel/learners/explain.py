"""Why a router chose: each arm's score in parts, and the features that decided between two arms.

Computed lazily, at explain time, from the features logged with the decision and a
bandit's state: the decision's hot path does nothing more. Feature names are
recomputed from the input, not kept in a map: the featurizer hashes each field value
(`field=value`, or `field` for a number), each prompt word (`prompt:word`) and each pair
of adjacent words (`prompt:word next`) into its slots, so hashing them again names the
slots of this input (slots two names share are named by both, joined with ` | `); the
dense block is named by position (`constant`, `text.<stat>`, `embedding[k]`).

For the linear quality models, an arm's logit is the sum over the input's features of
weight x value (its own row, plus the shared row, which is the same for every arm). The
chosen arm's lead over the runner-up in predicted quality is then a sum of per-feature
differences (w_chosen - w_runner_up) x value; the `k` largest in size are the features
that decided it. Its lead in score adds the cost, latency and optimism (ucb) parts.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from flywheel.learners.features import _WORD_BYTES, TEXT_STATS, HashedFeaturizer
from flywheel.learners.linear_bandit import LinearBandit


def feature_names(fz: HashedFeaturizer, x: Mapping[str, Any]) -> dict[int, str]:
    """The names of the slots the input x touches."""
    names: dict[int, list[str]] = {}

    def add(slot: int, name: str) -> None:
        names.setdefault(int(slot), []).append(name) if name not in names.get(int(slot), []) else None

    if not fz.n_dense:
        add(fz._slot("__bias__"), "bias")
    for name in fz.fields:
        v = x.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            add(fz._slot(f"{name}={v}"), f"{name}={v}")
        else:
            add(fz._slot(f"{name}#"), name)
    text = x.get(fz.prompt_key) if fz.prompt_key else None
    if text:
        words = [w.decode("utf-8", "replace")
                 for w in str(text).lower().encode("utf-8", "surrogatepass").translate(_WORD_BYTES).split()]
        slots = fz._tokens(str(text)).tolist()
        tokens = words + [f"{a} {b}" for a, b in zip(words, words[1:])] if fz.bigrams else words
        for slot, token in zip(slots, tokens):
            add(slot, f"prompt:{token}")
    base = 1 << fz.n_bits
    dense = ["constant"] + ([f"text.{s}" for s, _ in TEXT_STATS] if fz.text_stats else [])
    dense += [f"embedding[{k}]" for k in range(fz.embedding_dim)]
    for k, name in enumerate(dense[:fz.n_dense]):
        add(base + k, name)
    return {slot: " | ".join(ns) for slot, ns in names.items()}


def explain(bandit: LinearBandit, x: Mapping[str, Any], chosen: str, k: int = 5) -> dict[str, Any]:
    """Each arm's score in parts, and the k features that most decided `chosen` over the runner-up.

    The runner-up is the best-scored other arm (when `chosen` was explored, not the best,
    that is the arm the policy preferred). JSON-ready.
    """
    if chosen not in bandit.arms:
        raise ValueError(f"arm: {chosen!r} is not an arm of this router ({', '.join(bandit.arms)})")
    f = bandit.featurize(x)
    quality, sd = bandit._quality_and_sd(f)
    cost, latency = bandit.costs_featurized(f)
    scores = bandit.scores_featurized(f)
    arms = {a: {"score": float(scores[i]), "quality": float(quality[i]), "quality_sd": float(sd[i]),
                "cost": float(cost[i]), "latency_s": float(latency[i])} for i, a in enumerate(bandit.arms)}
    c = bandit.arms.index(chosen)
    others = [i for i in range(len(bandit.arms)) if i != c]
    out: dict[str, Any] = {"arm": chosen, "arms": arms, "runner_up": None, "contributions": []}
    if not others:
        return out
    r = max(others, key=lambda i: scores[i])
    idx, val = f[0], f[1]
    diff = (bandit._w[1 + c, idx] - bandit._w[1 + r, idx]) * val
    names = feature_names(bandit.featurizer, x)
    top = np.argsort(-np.abs(diff))[:k]
    out["runner_up"] = bandit.arms[r]
    out["lead"] = {
        "score": float(scores[c] - scores[r]),
        "logit": float(diff.sum()),
        "quality": float(quality[c] - quality[r]),
        "cost": float(-bandit.cost_weight * (cost[c] - cost[r])),
        "latency": float(-bandit.latency_weight * (latency[c] - latency[r])),
        "optimism": float(bandit.ucb * (sd[c] - sd[r])),
    }
    out["contributions"] = [
        {"feature": names.get(int(idx[j]), f"slot {int(idx[j])}"), "value": float(val[j]),
         "weight_chosen": float(bandit._w[1 + c, idx[j]]), "weight_runner_up": float(bandit._w[1 + r, idx[j]]),
         "contribution": float(diff[j])}
        for j in top.tolist() if diff[j] != 0.0
    ]
    return out
