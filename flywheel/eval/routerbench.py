"""Load a table of recorded model outcomes in the RouterBench wide format.

One row per prompt: a `prompt` column, a score column per model named after the model
(quality in [0, 1], e.g. 1.0 correct, 0.0 wrong) and `<model>|total_cost` beside it.
Any other column (`<model>|model_response`, `sample_id`, `eval_name`, `split`,
`oracle_model_to_route_to`, ...) is ignored. The models are the names X for which both
`X` and `X|total_cost` are columns, in the table's column order; any number of them.
Reads .csv, .csv.gz and .parquet (RouteLLM's evaluation data, RouterBench's tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

COST_SUFFIX = "|total_cost"


@dataclass(frozen=True)
class RouterBenchTable:
    """Recorded outcomes: `scores[i, j]` and `costs[i, j]` of model j on prompt i.

    >>> t = RouterBenchTable("t.csv", ["a", "b"], ["weak", "strong"],
    ...                      np.array([[0.0, 1.0], [1.0, 1.0]]), np.array([[0.0, 1.0], [0.0, 1.0]]))
    >>> t.n_prompts, t.mean_quality(), t.mean_cost(), t.row("a")
    (2, {'weak': 0.5, 'strong': 1.0}, {'weak': 0.0, 'strong': 1.0}, 0)
    """

    path: str
    prompts: list[str]
    models: list[str]
    scores: np.ndarray
    costs: np.ndarray
    _rows: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rows: dict[str, int] = {}
        for i, p in enumerate(self.prompts):
            rows.setdefault(p, i)  # a repeated prompt: its first row answers
        object.__setattr__(self, "_rows", rows)

    @property
    def n_prompts(self) -> int:
        return len(self.prompts)

    def row(self, prompt: str) -> int | None:
        """The row of a prompt (exact text; the first where it repeats), None if absent."""
        return self._rows.get(prompt)

    def mean_quality(self) -> dict[str, float]:
        """Each model's mean score over the table."""
        return dict(zip(self.models, self.scores.mean(axis=0).tolist()))

    def mean_cost(self) -> dict[str, float]:
        """Each model's mean cost per prompt over the table."""
        return dict(zip(self.models, self.costs.mean(axis=0).tolist()))

    def oracle_quality(self) -> float:
        """Mean of the best score on each prompt (a router that knows the outcomes)."""
        return float(self.scores.max(axis=1).mean())


def model_columns(columns: Sequence[str]) -> list[str]:
    """The models of a table: names X with both `X` and `X|total_cost` among the columns.

    >>> model_columns(["prompt", "a", "a|total_cost", "a|model_response", "b|total_cost", "c", "c|total_cost"])
    ['a', 'c']
    """
    present = set(columns)
    return [c for c in columns if not c.endswith(COST_SUFFIX) and f"{c}{COST_SUFFIX}" in present]


def _read(path: Path):
    import pandas as pd

    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return pd.read_csv(path)
    raise ValueError(f"{path}: unknown table format (expected .csv, .csv.gz or .parquet)")


def _numeric(frame, column: str, path: Path, what: str) -> np.ndarray:
    import pandas as pd

    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: {what} column {column!r} is not numeric (row {i}: {raw.iloc[i]!r})")
    if values.isna().any():
        raise ValueError(f"{path}: {what} column {column!r} has {int(values.isna().sum())} missing values")
    return values.to_numpy(dtype=float)


def load_routerbench(path: str | Path) -> RouterBenchTable:
    """Read a RouterBench-format table; ValueError naming the file and the problem if it is not one."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    frame = _read(path)
    if "prompt" not in frame.columns:
        raise ValueError(f"{path}: no 'prompt' column (columns: {list(frame.columns)[:10]})")
    models = model_columns([str(c) for c in frame.columns])
    if len(models) < 2:
        raise ValueError(
            f"{path}: found {len(models)} model(s) {models}; a router needs at least 2 "
            f"(a model is a score column X with an 'X{COST_SUFFIX}' column beside it)"
        )
    if len(frame) == 0:
        raise ValueError(f"{path}: the table has no rows")
    scores = np.column_stack([_numeric(frame, m, path, "score") for m in models])
    costs = np.column_stack([_numeric(frame, f"{m}{COST_SUFFIX}", path, "cost") for m in models])
    prompts = frame["prompt"].astype(str).tolist()
    return RouterBenchTable(str(path), prompts, models, scores, costs)
