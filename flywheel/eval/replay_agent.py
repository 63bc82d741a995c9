"""The replay agent: real recorded outcomes of real models answer (a RouterBench-format table)."""

from __future__ import annotations

from pathlib import Path

from flywheel.eval.routerbench import RouterBenchTable, load_routerbench
from flywheel.workflows.agent_io import AgentError, AgentRequest, AgentResult

REPLAY_CONFIDENCE = 0.5
"""The table records no confidence, so every replayed answer reports this one: undecided.

A confidence gate in front of a replay agent therefore sees the same value for every
answer; set its threshold below 0.5 to pass them all, above to send them all to review."""


class ReplayAgent:
    """Answers a prompt of the table as `model` did when it was recorded.

    The request's prompt is looked up by its exact text (the first row where a prompt
    repeats). The answer is `{"model", "score", "correct", "row"}`: the recorded score,
    `correct` when it is at least 0.5, and the table row, so a caller can reveal the
    outcome. Cost is the recorded `<model>|total_cost`; latency is 0 (the table has none);
    tokens are 0. A prompt not in the table is an AgentError naming it.

    `table` is a loaded table or the path of one (.csv, .csv.gz, .parquet).
    """

    def __init__(self, table: RouterBenchTable | str | Path, model: str):
        self.table = table if isinstance(table, RouterBenchTable) else load_routerbench(table)
        if model not in self.table.models:
            raise ValueError(
                f"replay: model {model!r} is not in {self.table.path} (models: {self.table.models})"
            )
        self.model = model
        self._column = self.table.models.index(model)

    async def run(self, request: AgentRequest) -> AgentResult:
        row = self.table.row(request.prompt)
        if row is None:
            shown = request.prompt if len(request.prompt) <= 80 else request.prompt[:77] + "..."
            raise AgentError(f"replay: prompt {shown!r} is not in {self.table.path}")
        score = float(self.table.scores[row, self._column])
        return AgentResult(
            answer={"model": self.model, "score": score, "correct": score >= 0.5, "row": row},
            confidence=REPLAY_CONFIDENCE,
            tokens_in=0,
            tokens_out=0,
            cost=float(self.table.costs[row, self._column]),
            latency_s=0.0,
            model=self.model,
        )

    async def close(self) -> None:
        """Nothing to release."""
