"""The replay benchmark on RouteLLM's evaluation data (../shared/data/routellm): the learning
router streamed through MMLU and GSM8K by progressive validation, bandit feedback (only the
chosen model's outcome is revealed, exploration included) and full feedback. See
flywheel/learners/bench_replay.py for the protocol and router_metrics.py for the figures.

    python benchmarks/replay_routellm.py [--seed 0] [--features auto|embeddings|hashed] [--variants]
                                         [--extra-seeds 1,2]

Prints a table and writes benchmarks/results/replay_routellm.json. `--variants` also runs
the learner variants that were compared when choosing the router (bandit feedback only,
about 5 minutes more with embeddings) and adds their APGR to the table and the JSON.
`--extra-seeds` repeats the benchmark with other seeds (other prompt orders) and reports
the spread of APGR, which is about +-0.01 on MMLU and +-0.015 on GSM8K.
The first run with embeddings embeds the prompts (about 10 minutes for MMLU on 2 cores);
the embeddings are cached under .flywheel/cache (or $FLYWHEEL_CACHE_DIR) and reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from flywheel.learners.adagrad import AdaGrad

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "routellm"
FILES = ["mmlu.csv.gz", "gsm8k.csv.gz"]
TARGETS = {"mmlu.csv.gz": 0.66, "gsm8k.csv.gz": 0.62}  # APGR, bandit feedback
PUBLISHED = {"mmlu.csv.gz": 0.60, "gsm8k.csv.gz": 0.62}  # RouteLLM's best routers, as quoted in the data's README

# name -> (features, LinearBandit arguments over bench_replay.BANDIT, featurizer arguments over its FEATURES)
_ADAGRAD = {"solver": AdaGrad(learning_rate=0.5), "shared": True, "ucb": 0.0, "epsilon": 0.2,
            "epsilon_min": 0.02, "epsilon_half_life": 2000, "importance_clip": 0.0}
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "adagrad, shared, eps 0.2->0.02 (the first learner), hashed words (16 bits)": (
        "hashed", _ADAGRAD, {"n_bits": 16, "text_stats": False}),
    "the same + text statistics, 18 bits": ("hashed", _ADAGRAD, {}),
    "laplace, ucb 0.5, hashed words + text statistics, no importance weights": ("hashed", {"importance_clip": 0.0}, {}),
    "laplace, ucb 0.5, hashed words + text statistics (the router, hashed)": ("hashed", {}, {}),
    "laplace + embeddings, with a shared component": ("embeddings", {"shared": True}, {}),
    "laplace + embeddings, no ucb (epsilon-greedy 2%)": ("embeddings", {"ucb": 0.0}, {}),
    "laplace + embeddings, ucb 1.0": ("embeddings", {"ucb": 1.0}, {}),
}


def _print(results: dict[str, dict[str, Any]]) -> None:
    head = (f"{'table':<14}{'prompts':>8}  {'features':<26}{'APGR':>7}{'CPT50':>7}{'CPT80':>7}"
            f"{'1st half':>9}{'2nd half':>9}{'APGR full':>10}{'CPT50 full':>11}{'target':>8}{'RouteLLM':>9}"
            f"{'seconds':>9}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        full = r["full_feedback"]
        feats = "embeddings" if "embeddings" in r["features"] else "hashed"
        first, second = (h["apgr"] for h in r["halves"])  # APGR on each half of the stream, bandit feedback
        print(f"{name:<14}{r['n_prompts']:>8}  {feats:<26}{r['apgr']:>7.3f}{r['cpt50']:>7.3f}{r['cpt80']:>7.3f}"
              f"{first:>9.3f}{second:>9.3f}{full['apgr']:>10.3f}{full['cpt50']:>11.3f}{TARGETS[name]:>8.2f}{PUBLISHED[name]:>9.2f}"
              f"{r['wall_seconds']:>9.1f}")  # featurization, bandit and full-feedback sweeps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="Seed of the prompt order and the router.")
    ap.add_argument("--features", default="auto", help="auto (embeddings when installed), embeddings or hashed.")
    ap.add_argument("--workers", type=int, default=2, help="Passes run side by side in this many processes.")
    ap.add_argument("--variants", action="store_true", help="Also run the variants compared (bandit feedback).")
    ap.add_argument("--extra-seeds", default="", help="Comma-separated seeds to repeat the benchmark with.")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "replay_routellm.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from flywheel.eval.bench_replay import render, run_bench
    from flywheel.learners.features import embeddings_available
    from flywheel.eval.routerbench import load_routerbench

    if args.features == "auto" and not embeddings_available():
        print("the `embeddings` extra is not installed: hashed words + text statistics only")
    started = time.perf_counter()
    tables = {name: load_routerbench(DATA / name) for name in FILES}
    results = {}
    for name, table in tables.items():
        results[name] = run_bench(table, seed=args.seed, features=args.features, workers=args.workers)
        print(render(results[name]), end="\n\n", flush=True)
    _print(results)
    spread: dict[str, dict[str, Any]] = {}
    extra = [int(x) for x in args.extra_seeds.split(",") if x.strip()]
    if extra:
        print("\nother seeds (APGR bandit / full):")
        for name, table in tables.items():
            per = {args.seed: (results[name]["apgr"], results[name]["full_feedback"]["apgr"])}
            for sd in extra:
                r = run_bench(table, seed=sd, features=args.features, workers=args.workers)
                per[sd] = (r["apgr"], r["full_feedback"]["apgr"])
            bandit_apgr = [v[0] for v in per.values()]
            full_apgr = [v[1] for v in per.values()]
            spread[name] = {"apgr_by_seed": {s_: v[0] for s_, v in per.items()},
                            "full_feedback_apgr_by_seed": {s_: v[1] for s_, v in per.items()},
                            "apgr_mean": sum(bandit_apgr) / len(bandit_apgr),
                            "full_feedback_apgr_mean": sum(full_apgr) / len(full_apgr)}
            print(f"  {name:<14}" + "  ".join(f"seed {s_}: {b:.3f} / {f:.3f}" for s_, (b, f) in per.items())
                  + f"  mean {spread[name]['apgr_mean']:.3f} / {spread[name]['full_feedback_apgr_mean']:.3f}",
                  flush=True)
    variants: dict[str, dict[str, float]] = {}
    if args.variants:
        print("\nvariants (bandit feedback, APGR):")
        for label, (features, bandit, featurizer_args) in VARIANTS.items():
            if features == "embeddings" and not embeddings_available():
                continue
            variants[label] = {}
            for name, table in tables.items():
                r = run_bench(table, seed=args.seed, features=features, feedback=("bandit",), bandit=bandit,
                              featurizer_args=featurizer_args, workers=args.workers)
                variants[label][name] = r["apgr"]
            print(f"  {label:<80}" + "".join(f"{n.split('.')[0]} {v:.3f}  " for n, v in variants[label].items()),
                  flush=True)
    wall = round(time.perf_counter() - started, 1)
    met = {n: results[n]["apgr"] >= TARGETS[n] for n in FILES}
    print(f"\ntargets (APGR, bandit feedback): " + ", ".join(
        f"{n.split('.')[0]} {results[n]['apgr']:.3f} vs {TARGETS[n]:.2f} ({'met' if met[n] else 'not met'})"
        for n in FILES) + f"; wall {wall} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(
        {"seed": args.seed, "wall_s": wall, "targets": TARGETS, "published_apgr": PUBLISHED, "met": met,
         "results": results, "seeds": spread, "variants": variants},
        indent=1,
    ))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
