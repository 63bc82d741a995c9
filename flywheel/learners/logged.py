"""A deployment's logged outcomes as a file: what `flywheel export` writes and `flywheel learn --from` reads.

One row per learned outcome, each joined with the decision it judges: the router's
features as logged (`x`), the arm chosen and the probability the logging policy had
of choosing it (`propensity`), the outcome (`quality` in [0, 1], `cost`, `latency_s`),
the agent's `confidence` (None: it failed) and whether the answer was right, the gate
that judged it, and where it came from (`workflow`, `run_id`, `config_version`,
ledger `position`). The file is JSON Lines (`.jsonl`, `.jsonl.gz`: one LoggedOutcome
object a line) or Parquet (`.parquet`: the same columns, `x` as a JSON string), in
ledger order. Another deployment's export is a warm start for this one: the
propensities make its outcomes usable off-policy (flywheel.learners.warm_start).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flywheel.ledger import Ledger
from flywheel.learners.examples import LearningExample
from flywheel.learners.loop import example_of

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


class LoggedOutcome(BaseModel):
    """One logged decision with its outcome."""

    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(description="The workflow the run belongs to.")
    run_id: str = Field(description="The run's id in the deployment that logged it.")
    position: int = Field(ge=0, description="The outcome's position in that deployment's ledger.")
    config_version: str | None = Field(default=None, description="The config version that decided the run.")
    x: dict[str, Any] = Field(description="The router's features as logged with the decision.")
    arm: str = Field(min_length=1, description="The arm (agent) the router chose.")
    propensity: float = Field(gt=0.0, le=1.0, description="The logging policy's probability of choosing `arm`.")
    quality: float = Field(ge=0.0, le=1.0, description="The outcome's quality in [0, 1].")
    cost: float = Field(ge=0.0, description="Cost of the run in USD.")
    latency_s: float = Field(ge=0.0, description="Latency of the run in seconds.")
    confidence: float | None = Field(default=None, description="The agent's confidence; null when it failed.")
    correct: bool | None = Field(default=None, description="Whether the answer was right; null when unknown.")
    gate: str | None = Field(default=None, description="The gate step that judged the confidence, if any.")
    human_override: bool = Field(default=False, description="Whether a person rejected or edited the answer.")

    def example(self) -> LearningExample:
        return LearningExample(
            x=dict(self.x), arm=self.arm, propensity=self.propensity, quality=self.quality, cost=self.cost,
            latency_s=self.latency_s, confidence=self.confidence, correct=self.correct, gate=self.gate,
            human_override=self.human_override, decided_at=None,
        )


def logged_rows(ledger: Ledger, workflow: str, page: int = 1000) -> Iterator[LoggedOutcome]:
    """Every learnable outcome of `workflow` in the ledger, in ledger order."""
    position = 0
    while True:
        joined = ledger.joined_outcomes_after(position, workflow=workflow, limit=page)
        if not joined:
            return
        for j in joined:
            ex = example_of(j)
            if ex is not None:
                yield LoggedOutcome(
                    workflow=workflow, run_id=j.outcome.run_id, position=j.outcome.position,
                    config_version=j.config_version, x=ex.x, arm=ex.arm, propensity=ex.propensity,
                    quality=ex.quality, cost=ex.cost, latency_s=ex.latency_s, confidence=ex.confidence,
                    correct=ex.correct, gate=ex.gate, human_override=ex.human_override,
                )
        position = joined[-1].outcome.position


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in SUFFIXES:
        if name.endswith(s):
            return s
    raise ValueError(f"{path}: a logged-outcomes file ends in one of {', '.join(SUFFIXES)}")


def write_logged(rows: Iterator[LoggedOutcome], path: str | Path) -> int:
    """Write rows to `path` (JSON Lines or Parquet by its suffix); returns how many."""
    path = Path(path)
    kind = _suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".parquet":
        import pandas as pd

        records = [{**r.model_dump(), "x": json.dumps(r.x, sort_keys=True)} for r in rows]
        pd.DataFrame(records, columns=list(LoggedOutcome.model_fields)).to_parquet(path, index=False)
        return len(records)
    n = 0
    with (gzip.open(path, "wt") if kind == ".jsonl.gz" else path.open("w")) as out:
        for r in rows:
            out.write(r.model_dump_json() + "\n")
            n += 1
    return n


def read_logged(path: str | Path) -> list[LoggedOutcome]:
    """The rows of a logged-outcomes file; ValueError naming the row and the field of a bad one."""
    path = Path(path)
    kind = _suffix(path)
    if kind == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        raw = [{k: (None if _missing(v) else v) for k, v in rec.items()} for rec in frame.to_dict("records")]
        for rec in raw:
            if isinstance(rec.get("x"), str):
                rec["x"] = json.loads(rec["x"])
    else:
        with (gzip.open(path, "rt") if kind == ".jsonl.gz" else path.open()) as f:
            raw = []
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        raw.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}: row {i}: not JSON ({e.msg})") from None
    rows = []
    for i, rec in enumerate(raw, 1):
        try:
            rows.append(LoggedOutcome.model_validate(rec))
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "row"
            raise ValueError(f"{path}: row {i}: {field}: {err['msg']}") from None
    return rows


def _missing(v: Any) -> bool:
    try:
        return v is None or (isinstance(v, float) and v != v)
    except TypeError:
        return False
