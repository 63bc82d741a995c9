"""Check a run's input against the workflow's declared fields, and take the router's features."""

from __future__ import annotations

import math
from typing import Any

from flywheel.workflows.spec import WorkflowSpec


def input_problems(spec: WorkflowSpec, data: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for every problem of `data` as an input of `spec`; [] when it is valid.

    >>> from flywheel.workflows.loading import load_model, packaged_configs
    >>> spec = load_model(packaged_configs() / "workflows" / "ticket_triage.yaml", WorkflowSpec)
    >>> input_problems(spec, {"text": "hi", "product": "toys", "customer_tier": "pro", "channel": "chat", "x": 1})
    [('product', "must be one of ['billing', 'technical', 'account', 'shipping'], got 'toys'"), ('x', 'not a declared input field')]
    >>> spec = load_model(packaged_configs() / "workflows" / "report_generation.yaml", WorkflowSpec)
    >>> ok = {"request": "Q3", "report_type": "summary", "audience": "internal"}
    >>> input_problems(spec, {**ok, "length_words": -1e308}), input_problems(spec, {**ok, "length_words": 1e308})
    ([('length_words', 'must be at least 1, got -1e+308')], [('length_words', 'must be at most 20000, got 1e+308')])
    >>> input_problems(spec, {**ok, "length_words": float("nan")})
    [('length_words', 'must be a finite number, got nan')]
    """
    problems: list[tuple[str, str]] = []
    for f in spec.inputs:
        if f.name not in data or data[f.name] is None:
            if f.required:
                problems.append((f.name, "field required"))
            continue
        v = data[f.name]
        if f.type == "category" and v not in (f.values or []):
            problems.append((f.name, f"must be one of {f.values}, got {v!r}"))
        elif f.type == "number" and (isinstance(v, bool) or not isinstance(v, (int, float))):
            problems.append((f.name, f"must be a number, got {type(v).__name__}"))
        elif f.type == "number" and not math.isfinite(v):
            problems.append((f.name, f"must be a finite number, got {v!r}"))
        elif f.type == "number" and f.min is not None and v < f.min:
            problems.append((f.name, f"must be at least {f.min:g}, got {v!r}"))
        elif f.type == "number" and f.max is not None and v > f.max:
            problems.append((f.name, f"must be at most {f.max:g}, got {v!r}"))
        elif f.type == "text" and not isinstance(v, str):
            problems.append((f.name, f"must be a string, got {type(v).__name__}"))
        elif f.type == "boolean" and not isinstance(v, bool):
            problems.append((f.name, f"must be true or false, got {type(v).__name__}"))
    declared = {f.name for f in spec.inputs}
    problems.extend((k, "not a declared input field") for k in data if k not in declared)
    return problems


def features_of(spec: WorkflowSpec, data: dict[str, Any]) -> dict[str, Any]:
    """What the router sees: the declared feature fields and, if enabled, the prompt text."""
    x = {name: data.get(name) for name in spec.features.fields}
    if spec.features.prompt:
        x["prompt"] = data.get(spec.prompt_field, "")
    return x
