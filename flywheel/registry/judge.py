"""Judge a proposed learned config against the live one (the champion), by a workflow's policy.

`evaluate` clips what the policy lets it clip and decides whether the version
goes live by itself (`auto`), waits for a person (`review`) or may not go live
(`refused`), with a reason for each rule applied. A config is judged as its
learnable parameters, flattened to paths (`parameters`); `diff` lists what two
configs change. The rules themselves are flywheel.registry.policy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from pydantic import ValidationError

from flywheel.registry.learned_config import LearnedConfig
from flywheel.registry.policy import _LEVEL, BANDIT_DERIVED, EPS, Autonomy, Decision, ParameterRule, WorkflowPolicy


def parameters(config: LearnedConfig) -> dict[str, float]:
    """The config's learnable parameters, by path.

    >>> from flywheel.registry.learned_config import RoutingConfig
    >>> cfg = LearnedConfig(workflow="w", thresholds={"gate": 0.7}, routing=RoutingConfig(weights={"a": 1.0}),
    ...                     cost_weight=5.0, resources={"a.replicas": 2})
    >>> parameters(cfg)  # doctest: +NORMALIZE_WHITESPACE
    {'thresholds.gate': 0.7, 'routing.weights.a': 1.0, 'routing.exploration': 0.0,
     'routing.temperature': 1.0, 'cost_weight': 5.0, 'resources.a.replicas': 2.0}
    """
    out = {f"thresholds.{gate}": v for gate, v in config.thresholds.items()}
    out.update({f"routing.weights.{arm}": w for arm, w in config.routing.weights.items()})
    out["routing.exploration"] = config.routing.exploration
    out["routing.temperature"] = config.routing.temperature
    out["cost_weight"] = config.cost_weight
    out.update({f"resources.{key}": v for key, v in config.resources.items()})
    return out


def diff(a: LearnedConfig | None, b: LearnedConfig) -> list[tuple[str, float | None, float | None]]:
    """(path, before, after) of each parameter that differs from `a` to `b` (`a` None: all of `b`).

    >>> from flywheel.registry.learned_config import RoutingConfig
    >>> a = LearnedConfig(workflow="w", thresholds={"g": 0.5}, routing=RoutingConfig(), cost_weight=1.0)
    >>> diff(a, a.model_copy(update={"thresholds": {"g": 0.6}}))
    [('thresholds.g', 0.5, 0.6)]
    """
    before = parameters(a) if a is not None else {}
    after = parameters(b)
    out: list[tuple[str, float | None, float | None]] = [
        (path, before.get(path), v) for path, v in after.items() if _changed(before.get(path), v)
    ]
    return out + [(path, v, None) for path, v in before.items() if path not in after]


@dataclass(slots=True)
class Change:
    """One parameter the proposal changes, or the policy adjusted."""

    path: str
    before: float | None
    proposed: float | None
    after: float | None
    autonomy: Autonomy
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Verdict:
    """The policy's decision on a proposal, the config to register and why."""

    decision: Decision
    config: LearnedConfig
    changes: list[Change]
    reasons: list[str]


def evaluate(proposal: LearnedConfig, champion: LearnedConfig | None, policy: WorkflowPolicy) -> Verdict:
    """Judge `proposal` against the live `champion` (None: it would be the first version).

    >>> from flywheel.registry.learned_config import RoutingConfig
    >>> live = LearnedConfig(workflow="w", thresholds={"g": 0.5}, routing=RoutingConfig(), cost_weight=1.0)
    >>> policy = WorkflowPolicy(parameters={"thresholds.*": {"max": 0.9}})
    >>> v = evaluate(live.model_copy(update={"thresholds": {"g": 0.95}}), live, policy)
    >>> v.decision, v.config.thresholds, v.reasons
    ('auto', {'g': 0.9}, ['thresholds.g: 0.95 above max 0.9, clipped to 0.9'])
    """
    first = champion is None
    before = parameters(champion) if champion is not None else {}
    proposed = parameters(proposal)
    bandit = proposal.routing.kind == "bandit"
    level, changes, reasons, clipped = "auto", [], [], {}
    if champion is not None and champion.routing.kind != proposal.routing.kind:
        level = "review"
        reasons.append(f"routing.kind: changes from {champion.routing.kind} to {proposal.routing.kind}: review")
    paths = list(proposed) + [p for p in before if p not in proposed]
    for path in paths:
        _, rule = policy.rule_for(path)
        derived = bandit and any(fnmatchcase(path, p) for p in BANDIT_DERIVED)
        judged = _judge(before.get(path), proposed.get(path), rule, policy, first=first, derived=derived)
        if judged.after is not None and math.isfinite(judged.after) and proposed[path] != judged.after:
            clipped[path] = judged.after
        if _LEVEL[judged.level] > _LEVEL[level]:
            level = judged.level
        if judged.changed or judged.notes or path in clipped:
            changes.append(
                Change(path, before.get(path), proposed.get(path), judged.after, rule.autonomy, judged.notes)
            )
            reasons.extend(f"{path}: {note}" for note in judged.notes)
    config = proposal
    if clipped:
        try:
            config = _with_values(proposal, clipped)
        except ValidationError as e:
            level = "refused"
            reasons.append(f"the clipped config is not valid ({_first_error(e)}): refused")
    return Verdict(decision=level, config=config, changes=changes, reasons=reasons)


# -- judging one parameter ----------------------------------------------------


@dataclass(slots=True)
class _Judged:
    after: float | None
    changed: bool
    level: Decision = "auto"
    notes: list[str] = field(default_factory=list)

    def escalate(self, level: Decision, note: str) -> None:
        self.notes.append(note)
        if _LEVEL[level] > _LEVEL[self.level]:
            self.level = level


def _judge(
    before: float | None, proposed: float | None, rule: ParameterRule, policy: WorkflowPolicy,
    *, first: bool, derived: bool,
) -> _Judged:
    out = _Judged(after=proposed, changed=_changed(before, proposed))
    if proposed is None:  # the proposal drops a parameter the champion has
        if rule.autonomy != "auto":
            action = "refused" if rule.autonomy == "frozen" else "review"
            out.escalate(action, f"{rule.autonomy}, proposal removes it (was {_num(before)}): {action}")
        return out
    if not math.isfinite(proposed):
        out.escalate("refused", f"{proposed} is not a finite number: refused")
        return out
    if out.changed and rule.autonomy != "auto":
        if first:
            out.notes.append(f"{rule.autonomy}; the first version sets it to {_num(proposed)}")
        elif rule.autonomy == "frozen":
            out.escalate("refused", f"frozen, proposal {_moves(before, proposed)}: refused")
        else:
            out.escalate("review", f"autonomy review, proposal {_moves(before, proposed)}: review")
    value = _bounds(proposed, rule, policy, derived, out)
    if not first and before is not None and rule.max_step is not None:
        value = _step(before, value, rule, policy, derived, out)
    out.after = value
    return out


def _bounds(value: float, rule: ParameterRule, policy: WorkflowPolicy, derived: bool, out: _Judged) -> float:
    where = _outside(value, rule)
    if where is None:
        return value
    limit = rule.min if where.startswith("below") else rule.max
    text = f"{_num(value)} {where}"
    if (rule.out_of_bounds or policy.out_of_bounds) == "refuse":
        out.escalate("refused", f"{text}: refused")
    elif derived:
        out.escalate("review", f"{text}; derived from the bandit's state, so it cannot be clipped: review")
    else:
        out.notes.append(f"{text}, clipped to {_num(limit)}")
        return limit
    return value


def _step(before: float, value: float, rule: ParameterRule, policy: WorkflowPolicy, derived: bool,
          out: _Judged) -> float:
    step = value - before
    if abs(step) <= rule.max_step + EPS:
        return value
    text = f"step {_num(abs(step))} from {_num(before)} to {_num(value)} exceeds max_step {_num(rule.max_step)}"
    action = rule.over_step or policy.over_step
    if action == "refuse":
        out.escalate("refused", f"{text}: refused")
    elif action == "review":
        out.escalate("review", f"{text}: review")
    elif derived:
        out.escalate("review", f"{text}; derived from the bandit's state, so it cannot be clipped: review")
    else:
        target = before + math.copysign(rule.max_step, step)
        where = _outside(target, rule)
        if where is None:
            out.notes.append(f"{text}, clipped to {_num(target)}")
            return target
        out.escalate("review", f"{text}; clipped to {_num(target)} it would be {where}: review")
    return value


def _outside(value: float, rule: ParameterRule) -> str | None:
    if rule.min is not None and value < rule.min - EPS:
        return f"below min {_num(rule.min)}"
    if rule.max is not None and value > rule.max + EPS:
        return f"above max {_num(rule.max)}"
    return None


def _with_values(config: LearnedConfig, values: dict[str, float]) -> LearnedConfig:
    """`config` with some parameters set; nothing else (version, state_sha) recomputed."""
    data = config.model_dump()
    for path, v in values.items():
        root, _, rest = path.partition(".")
        if root == "thresholds":
            data["thresholds"][rest] = v
        elif root == "resources":
            data["resources"][rest] = v
        elif root == "cost_weight":
            data["cost_weight"] = v
        elif rest.startswith("weights."):
            data["routing"]["weights"][rest.removeprefix("weights.")] = v
        else:
            data["routing"][rest] = v
    return LearnedConfig.model_validate(data)


def _first_error(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"


def _changed(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is not b
    return not abs(a - b) <= EPS  # NaN counts as changed


def _moves(before: float | None, after: float) -> str:
    return f"sets it to {_num(after)} (new)" if before is None else f"changes it from {_num(before)} to {_num(after)}"


def _num(x: float | None) -> str:
    """A number as a reason shows it: 6 significant digits, floats keep their point.

    >>> _num(1.0), _num(0.19000000000000006), _num(None)
    ('1.0', '0.19', 'None')
    """
    if x is None:
        return "None"
    s = f"{x:.6g}"
    return s + ".0" if s.lstrip("-").isdigit() else s
