"""Tune's proposal against the best point of an exhaustive grid, on simulator data.

    python benchmarks/tune_quality.py [--trials 32] [--seed 0]

Writes benchmarks/results/tune_quality.json: `gap_to_grid_best` (a fraction of the
grid best's true score), `trials`, `seconds` (of the Tune job). Targets: gap <= 0.02
with <= 32 trials, under 5 minutes. See flywheel/eval/bench_tune.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flywheel.eval.bench_tune import run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", type=int, default=5)
    args = parser.parse_args()
    result = run(trials=args.trials, seed=args.seed, grid=args.grid, progress=True)
    result["targets"] = {"gap_to_grid_best": 0.02, "trials": 32, "seconds": 300}
    out = ROOT / "benchmarks" / "results" / "tune_quality.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("gap_to_grid_best", "trials", "seconds")}))


if __name__ == "__main__":
    main()
