"""The RouterBench-format loader: csv, csv.gz and parquet; any number of models; clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.eval.routerbench import load_routerbench, model_columns


def _frame(models: list[str], n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data: dict[str, object] = {"sample_id": [f"s.{i}" for i in range(n)], "prompt": [f"question {i}" for i in range(n)],
                               "eval_name": ["toy"] * n}
    for j, m in enumerate(models):
        data[m] = rng.integers(0, 2, n).astype(float)
        data[f"{m}|total_cost"] = np.full(n, 0.001 * (j + 1))
        data[f"{m}|model_response"] = [f"answer {i} by {m}" for i in range(n)]
    data["oracle_model_to_route_to"] = [models[0]] * n
    return pd.DataFrame(data)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)  # pandas compresses .csv.gz by its name
    return path


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
@pytest.mark.parametrize("models", [["weak", "strong"], ["org/a-7b", "b", "c|v2", "d"]])
def test_reads_every_format_and_any_number_of_models(tmp_path: Path, name: str, models: list[str]) -> None:
    frame = _frame(models)
    table = load_routerbench(_write(frame, tmp_path / name))
    assert table.models == models
    assert table.n_prompts == 6 and table.prompts[2] == "question 2"
    assert table.scores.shape == table.costs.shape == (6, len(models))
    np.testing.assert_array_equal(table.scores[:, 1], frame[models[1]].to_numpy())
    assert table.mean_cost()[models[-1]] == pytest.approx(0.001 * len(models))
    assert table.row("question 4") == 4 and table.row("not there") is None


def test_gzip_is_really_compressed(tmp_path: Path) -> None:
    path = _write(_frame(["a", "b"]), tmp_path / "t.csv.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert load_routerbench(path).models == ["a", "b"]


def test_models_are_names_with_a_cost_column_beside_them() -> None:
    cols = ["prompt", "a", "a|total_cost", "b", "c|total_cost", "a|model_response", "split"]
    assert model_columns(cols) == ["a"]


def test_a_repeated_prompt_answers_from_its_first_row(tmp_path: Path) -> None:
    frame = _frame(["a", "b"])
    frame.loc[3, "prompt"] = "question 1"
    table = load_routerbench(_write(frame, tmp_path / "t.csv"))
    assert table.row("question 1") == 1 and table.n_prompts == 6


def test_no_prompt_column(tmp_path: Path) -> None:
    path = _write(_frame(["a", "b"]).rename(columns={"prompt": "question"}), tmp_path / "t.csv")
    with pytest.raises(ValueError, match=r"t\.csv: no 'prompt' column"):
        load_routerbench(path)


def test_fewer_than_two_models(tmp_path: Path) -> None:
    frame = _frame(["a", "b"]).drop(columns=["b|total_cost"])
    with pytest.raises(ValueError, match=r"t\.csv: found 1 model\(s\) \['a'\]; a router needs at least 2"):
        load_routerbench(_write(frame, tmp_path / "t.csv"))


@pytest.mark.parametrize("name", ["t.csv", "t.parquet"])
def test_non_numeric_scores(tmp_path: Path, name: str) -> None:
    frame = _frame(["a", "b"])
    frame["b"] = frame["b"].map(str)  # a column of text, as parquet keeps it
    frame.loc[2, "b"] = "yes"
    with pytest.raises(ValueError, match=rf"{name}: score column 'b' is not numeric \(row 2: 'yes'\)"):
        load_routerbench(_write(frame, tmp_path / name))


def test_missing_costs(tmp_path: Path) -> None:
    frame = _frame(["a", "b"])
    frame.loc[1, "a|total_cost"] = np.nan
    with pytest.raises(ValueError, match=r"cost column 'a\|total_cost' has 1 missing values"):
        load_routerbench(_write(frame, tmp_path / "t.csv"))


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown table format"):
        load_routerbench(tmp_path / "t.json")
    with pytest.raises(ValueError, match="no such file"):
        load_routerbench(tmp_path / "absent.csv")
