"""A model's own confidence in an answer, from the log-probabilities of its decisive tokens.

The answer is a JSON object; its decisive field's value spans some of the generated
tokens. For a category (the schema gives an `enum`) the confidence is the probability
of the whole value, exp(sum of the tokens' log-probabilities); for free text, where a
joint probability only measures length, it is the geometric mean of the tokens'
probabilities, exp(mean). Without a decisive field found, the mean over all tokens.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any


def value_span(content: str, field: str) -> tuple[int, int] | None:
    """Character span of `field`'s value in a JSON object's text (strings: without the quotes).

    >>> value_span('{"label": "refund"}', "label")
    (11, 17)
    >>> value_span('{"n": 12, "x": true}', "x")
    (15, 19)
    """
    m = re.search(r'"' + re.escape(field) + r'"\s*:\s*', content)
    if m is None:
        return None
    start = m.end()
    decoder = json.JSONDecoder()
    try:
        _, end = decoder.raw_decode(content, start)
    except json.JSONDecodeError:
        return None
    if content[start:start + 1] == '"':
        return start + 1, end - 1
    return start, end


def confidence_of(
    tokens: list[dict[str, Any]],
    content: str,
    decisive: str | None,
    schema: dict[str, Any] | None,
) -> float | None:
    """The confidence in [0, 1] from the OpenAI `logprobs.content` list, or None without one.

    >>> toks = [{"token": '{"', "logprob": 0.0}, {"token": 'label', "logprob": 0.0},
    ...         {"token": '":"', "logprob": 0.0}, {"token": 'ref', "logprob": -0.1},
    ...         {"token": 'und', "logprob": -0.1}, {"token": '"}', "logprob": -2.0}]
    >>> schema = {"properties": {"label": {"enum": ["refund", "bug"]}}}
    >>> round(confidence_of(toks, '{"label":"refund"}', "label", schema), 4)  # exp(-0.2)
    0.8187
    """
    usable = [t for t in tokens if isinstance(t.get("logprob"), (int, float)) and math.isfinite(t["logprob"])]
    if not usable:
        return None
    chosen = usable
    joint = False
    span = value_span(content, decisive) if decisive else None
    if span is not None and span[1] > span[0]:
        picked, pos = [], 0
        for t in usable:
            text = t.get("token") or ""
            if pos < span[1] and pos + len(text) > span[0]:
                picked.append(t)
            pos += len(text)
        if picked:
            chosen = picked
            prop = ((schema or {}).get("properties") or {}).get(decisive or "", {})
            joint = "enum" in prop or prop.get("type") == "boolean"
    logps = [float(t["logprob"]) for t in chosen]
    score = sum(logps) if joint else sum(logps) / len(logps)
    return min(1.0, max(0.0, math.exp(score)))
