"""The replay agent backend answers with the recorded outcome of its model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from flywheel.services.agents.base import AgentBackend
from flywheel.services.agents.replay import REPLAY_CONFIDENCE, ReplayAgent
from flywheel.eval.routerbench import load_routerbench
from flywheel.workflows.agent_io import AgentError, AgentRequest


@pytest.fixture()
def table_path(tmp_path: Path) -> Path:
    frame = pd.DataFrame({
        "prompt": ["What is 2+2?", "Name a prime.", "What is 2+2?"],
        "small": [1.0, 0.0, 0.0], "small|total_cost": [0.0001, 0.0002, 0.0003],
        "large": [1.0, 1.0, 0.0], "large|total_cost": [0.01, 0.02, 0.03],
        "large|model_response": ["4", "7", "5"],
    })
    path = tmp_path / "outcomes.csv.gz"
    frame.to_csv(path, index=False)
    return path


def _ask(agent: ReplayAgent, prompt: str) -> object:
    return asyncio.run(agent.run(AgentRequest(workflow="qa", run_id="r1", prompt=prompt, input={"q": prompt})))


def test_answers_with_the_recorded_score_and_cost(table_path: Path) -> None:
    small, large = ReplayAgent(table_path, "small"), ReplayAgent(str(table_path), "large")
    assert isinstance(small, AgentBackend)
    r = _ask(small, "Name a prime.")
    assert r.answer == {"model": "small", "score": 0.0, "correct": False, "row": 1}
    assert r.cost == pytest.approx(0.0002) and r.model == "small"
    assert r.confidence == REPLAY_CONFIDENCE == 0.5 and r.latency_s == 0.0 and r.tokens_in == r.tokens_out == 0
    r = _ask(large, "Name a prime.")
    assert r.answer["correct"] is True and r.cost == pytest.approx(0.02)


def test_a_repeated_prompt_answers_from_its_first_row(table_path: Path) -> None:
    r = _ask(ReplayAgent(table_path, "large"), "What is 2+2?")
    assert r.answer["row"] == 0 and r.answer["correct"] is True and r.cost == pytest.approx(0.01)


def test_shares_a_loaded_table(table_path: Path) -> None:
    table = load_routerbench(table_path)
    a, b = ReplayAgent(table, "small"), ReplayAgent(table, "large")
    assert a.table is b.table


def test_unknown_prompt_is_an_agent_error_naming_it(table_path: Path) -> None:
    with pytest.raises(AgentError, match=r"prompt 'What is 3\+3\?' is not in .*outcomes\.csv\.gz"):
        _ask(ReplayAgent(table_path, "small"), "What is 3+3?")
    long = "x" * 200
    with pytest.raises(AgentError, match=r"'x{77}\.\.\.'"):
        _ask(ReplayAgent(table_path, "small"), long)


def test_unknown_model_is_refused_at_construction(table_path: Path) -> None:
    with pytest.raises(ValueError, match=r"model 'medium' is not in .*models: \['small', 'large'\]"):
        ReplayAgent(table_path, "medium")
