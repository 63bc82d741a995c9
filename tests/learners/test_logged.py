"""The logged-outcomes file: every format reads back what was written; bad rows are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.learners.logged import LoggedOutcome, read_logged, write_logged


def _rows() -> list[LoggedOutcome]:
    return [LoggedOutcome(workflow="w", run_id=f"r{i}", position=i + 1, config_version="w@v1",
                          x={"prompt": f"hello {i}", "tier": "pro", "n": i}, arm="a" if i % 2 else "b",
                          propensity=0.5, quality=i / 4, cost=0.01 * i, latency_s=0.1,
                          confidence=None if i == 3 else 0.9, correct=None if i == 2 else bool(i % 2),
                          gate="confidence" if i else None, human_override=i == 1)
            for i in range(4)]


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.parquet"])
def test_what_is_written_reads_back(tmp_path: Path, name: str) -> None:
    rows = _rows()
    assert write_logged(iter(rows), tmp_path / name) == 4
    assert read_logged(tmp_path / name) == rows
    assert read_logged(tmp_path / name)[3].example().failed


def test_a_bad_row_or_suffix_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(_rows()[0].model_dump_json() + "\n" + _rows()[1].model_dump_json().replace('"quality":0.25',
                                                                                              '"quality":2'))
    with pytest.raises(ValueError, match="row 2: quality"):
        read_logged(path)
    path.write_text('{"workflow": "w", "surprise": 1}\n')
    with pytest.raises(ValueError, match="row 1: "):
        read_logged(path)
    with pytest.raises(ValueError, match="ends in one of"):
        read_logged(tmp_path / "x.csv")
