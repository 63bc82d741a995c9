"""The replay benchmark: the learning router on real recorded outcomes, by progressive validation.

A RouterBench-format table (flywheel.eval.routerbench) is streamed in a seeded
shuffled order through a fresh LinearBandit. Each prompt is routed BEFORE its outcome
is learned, and only the chosen model's recorded outcome is revealed (bandit feedback);
exploration is part of the figures. One pass per cost weight of a sweep gives one
(cost, quality) point per weight; the points are scored with RouteLLM's APGR and CPT
(two models) or RouterBench's AIQ (more): flywheel.eval.router_metrics. The
full-feedback variant reveals every model's outcome after each decision.

Every pass is also scored on each half of the stream (`halves`): the first half is
mostly the router learning from nothing, the second what it does once it has learned
from the first; the whole stream's figure is what the targets are measured on.

Cost weights are in units of the dearest model's mean cost (a weight of 0.1 trades
0.1 of quality for the price of the dearest model), so one grid fits any table. The
grid is refined where neighbouring points are far apart in cost (two models: in the
share of strong calls), so the curve is sampled from about all-cheap to about all-dear.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from flywheel.eval import router_metrics as rm
from flywheel.eval.calibration import ece_per_arm
from flywheel.learners.features import HashedFeaturizer, SentenceEmbedder, embeddings_available
from flywheel.learners.base import described
from flywheel.learners.laplace import Laplace
from flywheel.learners.warm_start import learn_wide_rows
from flywheel.learners.linear_bandit import Featurized, LinearBandit
from flywheel.eval.routerbench import RouterBenchTable
from flywheel.eval.served_replay import SERVED_WEIGHT, served_pass

# The router under test: LinearBandit with the laplace solver on hashed words + text
# statistics (+ embeddings with the `embeddings` extra), each outcome weighted by its
# clipped inverse propensity; chosen on these tables, see benchmarks/replay_routellm.py
# for the variants tried.
BANDIT: dict[str, Any] = {
    "solver": Laplace(learning_rate=1.0, prior_var=0.5),
    "shared": False,
    "ucb": 0.5,
    "epsilon": 0.02,
    "epsilon_min": 0.02,
    "importance_clip": 5.0,
}
FEATURES: dict[str, Any] = {"n_bits": 18, "bigrams": True, "text_stats": True}
GRID: tuple[float, ...] = (0.0, 0.03, 0.06, 0.09, 0.12, 0.15, 0.18, 0.21, 0.25, 0.3, 0.4, 0.6, 1.0)
MAX_GAP = 0.12  # refine the grid between points further apart than this (share or cost fraction)
MAX_PASSES = 18


@dataclass(frozen=True)
class Outcome:
    """What a pass's choices gave on some of its prompts: mean cost and quality, each model's share."""

    cost: float
    quality: float
    shares: dict[str, float]


@dataclass(frozen=True)
class ReplayPoint:
    """One pass: the cost weight, and the router's mean cost, quality and share of each model."""

    cost_weight: float
    cost: float
    quality: float
    shares: dict[str, float]
    explored: float  # share of decisions that were not the policy's best arm
    seconds: float
    halves: tuple[Outcome, ...] = ()  # the same figures on each half of the stream
    ece: dict[str, float | None] = field(default_factory=dict)  # per arm: predicted quality vs outcome


def featurize_table(
    table: RouterBenchTable, features: str = "auto", featurizer_args: dict[str, Any] | None = None
) -> tuple[HashedFeaturizer, list[Featurized], str]:
    """The featurizer, every prompt's feature vector, and what was used.

    `features`: "auto" (embeddings when the `embeddings` extra is installed, else
    hashed), "embeddings" or "hashed". Embeddings of a whole table are cached on disk.
    """
    args = {**FEATURES, **(featurizer_args or {})}
    use = features
    if features == "auto":
        use = "embeddings" if embeddings_available() else "hashed"
    if use == "embeddings":
        if not embeddings_available():
            raise ValueError("features: 'embeddings' needs the `embeddings` extra (sentence-transformers)")
        embedder = SentenceEmbedder()
        vectors = embedder(table.prompts)
        fz = HashedFeaturizer(embedder=embedder, embedding_dim=vectors.shape[1], **args)
        feats = [fz.transform_one({"prompt": p}, embedding=vectors[i]) for i, p in enumerate(table.prompts)]
        return fz, feats, f"hashed words + text stats + {embedder.model_name} embeddings"
    if use != "hashed":
        raise ValueError(f"features: {features!r} is not one of 'auto', 'embeddings', 'hashed'")
    fz = HashedFeaturizer(**args)
    return fz, [fz.transform_one({"prompt": p}) for p in table.prompts], "hashed words + text stats"


def _learning_scores(table: RouterBenchTable) -> np.ndarray:
    """Scores as qualities in [0, 1] for the learner (rescaled if the table's are not)."""
    s = table.scores
    lo, hi = float(s.min()), float(s.max())
    if lo >= 0.0 and hi <= 1.0:
        return s
    return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)


class _Replay:
    """What every pass shares (built once; worker processes get it by fork)."""

    def __init__(self, table: RouterBenchTable, featurizer: HashedFeaturizer, feats: list[Featurized],
                 seed: int, bandit: dict[str, Any], warm_start: float = 0.0):
        self.table = table
        self.featurizer = featurizer
        self.feats = feats
        self.seed = seed
        self.bandit = bandit
        if not 0.0 <= warm_start < 1.0:
            raise ValueError(f"warm_start: {warm_start!r} is not a fraction in [0, 1)")
        order = np.random.default_rng(seed).permutation(table.n_prompts)
        # a warm start learns the first fraction with full information; the rest is the stream measured
        self.warm_rows, self.order = np.split(order, [int(warm_start * table.n_prompts)])
        self.learn_q = _learning_scores(table)
        self.scale = max(float(table.costs.mean(axis=0).max()), 1e-12)

    def run(self, cost_weight: float, feedback: str) -> ReplayPoint:
        with _one_blas_thread():
            return self._run(cost_weight, feedback)

    def _run(self, cost_weight: float, feedback: str) -> ReplayPoint:
        t0 = time.perf_counter()
        models = self.table.models
        index = {m: j for j, m in enumerate(models)}
        bandit = LinearBandit(models, self.featurizer, cost_weight=cost_weight / self.scale, seed=self.seed,
                              **self.bandit)
        q, c = self.learn_q, self.table.costs
        if len(self.warm_rows):
            w = self.warm_rows
            learn_wide_rows(bandit, [self.feats[i] for i in w], models, q[w], c[w])
        chosen = np.empty(len(self.order), dtype=np.int64)
        predicted = np.empty(len(self.order))  # the chosen arm's predicted quality, before its outcome
        explored = 0
        full = feedback == "full"
        for k, i in enumerate(self.order.tolist()):
            f = self.feats[i]
            choice = bandit.decide_featurized(f, key=str(k))
            j = index[choice.arm]
            chosen[k] = j
            predicted[k] = bandit.predict_featurized(f)[j]
            explored += choice.scores[choice.arm] < max(choice.scores.values())
            if full:
                for jj, m in enumerate(models):
                    bandit.learn_featurized(f, m, float(q[i, jj]), float(c[i, jj]))
            else:
                bandit.learn_featurized(f, choice.arm, float(q[i, j]), float(c[i, j]), propensity=choice.propensity)
        whole = _outcome(self.table, self.order, chosen)
        return ReplayPoint(
            cost_weight=cost_weight,
            cost=whole.cost,
            quality=whole.quality,
            shares=whole.shares,
            explored=explored / len(self.order),
            seconds=time.perf_counter() - t0,
            halves=tuple(_outcome(self.table, self.order[part], chosen[part]) for part in halves(len(self.order))),
            ece=ece_per_arm(models, [models[j] for j in chosen.tolist()], predicted, q[self.order, chosen]),
        )


def halves(n: int) -> tuple[slice, slice]:
    """The first and the second half of a stream of n prompts."""
    return slice(0, n // 2), slice(n // 2, n)


def _outcome(table: RouterBenchTable, rows: np.ndarray, chosen: np.ndarray) -> Outcome:
    """Mean cost and quality of the chosen models on these rows, and each model's share."""
    counts = np.bincount(chosen, minlength=len(table.models)) / max(1, len(rows))
    return Outcome(float(table.costs[rows, chosen].mean()), float(table.scores[rows, chosen].mean()),
                   dict(zip(table.models, counts.tolist())))


def _one_blas_thread() -> Any:
    """Small matrix products run far faster on one BLAS thread than on threads that compete
    with the other pass's process (about 20x on 2 cores); threadpoolctl comes with scikit-learn."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - then BLAS keeps its own setting
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


_WORKER: _Replay | None = None


def _init_worker(replay: _Replay) -> None:
    global _WORKER  # one per worker process, set once by the pool's initializer
    _WORKER = replay


def _run_in_worker(args: tuple[float, str]) -> ReplayPoint:
    assert _WORKER is not None
    return _WORKER.run(*args)


def _position(table: RouterBenchTable, p: ReplayPoint) -> float:
    """Where a point lies between all-cheap and all-dear: share of strong calls or cost fraction."""
    if len(table.models) == 2:
        return p.shares[strong_and_weak(table)[0]]
    return p.cost / max(float(table.costs.mean(axis=0).max()), 1e-12)


def strong_and_weak(table: RouterBenchTable) -> tuple[str, str]:
    """The two models of a two-model table, the better one first."""
    q = table.mean_quality()
    a, b = table.models
    return (a, b) if q[a] >= q[b] else (b, a)


def sweep(replay: _Replay, feedback: str, grid: Sequence[float], workers: int,
          progress: Callable[[int, int], None] | None = None) -> list[ReplayPoint]:
    """One pass per cost weight, then more between points far apart, up to MAX_PASSES."""
    points: list[ReplayPoint] = []
    total = max(MAX_PASSES, len(grid))
    pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(replay,)) if workers > 1 else None

    def run_all(weights: list[float]) -> None:
        jobs = [(w, feedback) for w in weights]
        results = pool.map(_run_in_worker, jobs) if pool else (replay.run(*j) for j in jobs)
        for p in results:
            points.append(p)
            if progress:
                progress(len(points), total)

    try:
        run_all(sorted(set(grid)))
        while len(points) < MAX_PASSES:
            points.sort(key=lambda p: p.cost_weight)
            gaps = [(abs(_position(replay.table, a) - _position(replay.table, b)), (a.cost_weight + b.cost_weight) / 2)
                    for a, b in zip(points, points[1:])]
            wide = [w for gap, w in sorted(gaps, reverse=True) if gap > MAX_GAP][: min(workers, MAX_PASSES - len(points))]
            if not wide:
                break
            run_all(wide)
    finally:
        if pool:
            pool.shutdown()
    if progress:
        progress(total, total)
    return sorted(points, key=lambda p: p.cost_weight)


def score(table: RouterBenchTable, points: Sequence[ReplayPoint]) -> dict[str, Any]:
    """The figures of a sweep: APGR, CPT50, CPT80 (two models) or AIQ and the hull's figures."""
    return _figures(table, points, slice(None))


def score_halves(table: RouterBenchTable, points: Sequence[ReplayPoint], order: np.ndarray) -> list[dict[str, Any]]:
    """The figures of each half of the stream, against the models' means on that half's prompts."""
    return [{"prompts": len(order[part]), **_figures(table, [p.halves[h] for p in points], order[part])}
            for h, part in enumerate(halves(len(order)))]


def _figures(table: RouterBenchTable, outcomes: Sequence[Outcome | ReplayPoint], rows: Any) -> dict[str, Any]:
    """The figures of (cost, quality, shares) points, each model scored by its mean on `rows`."""
    quals = [o.quality for o in outcomes]
    mq = dict(zip(table.models, table.scores[rows].mean(axis=0).tolist()))
    mc = dict(zip(table.models, table.costs[rows].mean(axis=0).tolist()))
    if len(table.models) == 2:
        strong, weak = strong_and_weak(table)
        args = ([o.shares[strong] for o in outcomes], quals, mq[weak], mq[strong])
        return {"apgr": rm.apgr(*args), "cpt50": rm.cpt(0.5, *args), "cpt80": rm.cpt(0.8, *args)}
    costs = [o.cost for o in outcomes]
    model_c = [mc[m] for m in table.models]
    model_q = [mq[m] for m in table.models]
    return {
        "aiq": rm.aiq(costs, quals, model_c, model_q),
        "cost_to_95pct_best_frac": rm.cost_to_95pct_best_frac(costs, quals, model_c, model_q),
        "quality_at_tenth_cost": rm.quality_at_tenth_cost(costs, quals, model_c, model_q),
    }


def run_bench(
    table: RouterBenchTable,
    seed: int = 0,
    features: str = "auto",
    feedback: Sequence[str] = ("bandit", "full"),
    grid: Sequence[float] = GRID,
    bandit: dict[str, Any] | None = None,
    featurizer_args: dict[str, Any] | None = None,
    workers: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    served: float | None = SERVED_WEIGHT,
    warm_start: float = 0.0,
) -> dict[str, Any]:
    """The benchmark of one table; a JSON-ready dict.

    Top-level figures are for bandit feedback (apgr, cpt50, cpt80 for two models; aiq,
    cost_to_95pct_best_frac, quality_at_tenth_cost for more), with n_prompts, seed, the
    points, passes and seconds (of the sweep); the full-feedback figures are under
    `full_feedback`; `halves` holds the same figures on each half of the stream (the
    router learning, then learned); wall_seconds is the whole run's, featurization included.
    `progress(feedback, done, total)` is called after each pass. `served`: the cost weight
    of one bandit-feedback pass through the served path (flywheel.eval.served_replay), under
    `served` beside the in-process pass at that weight; None: no such pass. `warm_start`: the
    first fraction of the shuffled stream is learned first with full information (every
    model's outcome, flywheel.learners.warm_start) and the figures are on the rest (no served pass).
    """
    t0 = time.perf_counter()
    fz, feats, used = featurize_table(table, features, featurizer_args)
    t_feat = time.perf_counter() - t0
    config = {**BANDIT, **(bandit or {})}
    replay = _Replay(table, fz, feats, seed, config, warm_start)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    mq, mc = table.mean_quality(), table.mean_cost()
    out: dict[str, Any] = {
        "table": table.path,
        "n_prompts": table.n_prompts,
        "seed": seed,
        "models": {m: {"quality": mq[m], "cost": mc[m]} for m in table.models},
        "oracle_quality": table.oracle_quality(),
        "features": used,
        "bandit": described(config),
        "featurize_seconds": t_feat,
        "warm_start": warm_start,
        "warm_start_rows": len(replay.warm_rows),
        "n_measured": len(replay.order),
    }
    for fb in feedback:
        if fb not in ("bandit", "full"):
            raise ValueError(f"feedback: {fb!r} is not 'bandit' or 'full'")
        t1 = time.perf_counter()
        points = sweep(replay, fb, grid, workers, (lambda d, n, fb=fb: progress(fb, d, n)) if progress else None)
        measured = replay.order if warm_start else slice(None)  # the models' means on the prompts measured
        figures = {**_figures(table, points, measured), "halves": score_halves(table, points, replay.order),
                   "points": [asdict(p) for p in points], "passes": len(points), "seconds": time.perf_counter() - t1,
                   **calibration(points)}
        if fb == "bandit":
            out.update(figures)
        else:
            out["full_feedback"] = figures
    if served is not None and not warm_start:
        out["served"] = _served_figures(replay, served, out.get("points", []))
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def calibration(points: Sequence[ReplayPoint], weight: float = SERVED_WEIGHT) -> dict[str, Any]:
    """The ECE per arm of the pass nearest `weight` (every pass has its own under `points`)."""
    p = min(points, key=lambda p: abs(p.cost_weight - weight))
    return {"ece_per_arm": p.ece, "ece_cost_weight": p.cost_weight}


def _served_figures(replay: _Replay, weight: float, points: list[dict[str, Any]]) -> dict[str, Any]:
    """The served pass at `weight` beside the in-process bandit pass at the same weight."""
    table = replay.table
    chosen, facts = served_pass(table, replay.order, replay.learn_q, weight, seed=replay.seed)
    whole = _outcome(table, replay.order, chosen)
    in_process = next((p for p in points if p["cost_weight"] == weight), None) or asdict(replay.run(weight, "bandit"))
    out: dict[str, Any] = {**facts, "cost": whole.cost, "quality": whole.quality, "shares": whole.shares,
                           "in_process": {k: in_process[k] for k in ("cost", "quality", "shares")}}
    if len(table.models) == 2:
        strong, weak = strong_and_weak(table)
        mq = table.mean_quality()
        out["pgr"] = rm.pgr(whole.quality, mq[weak], mq[strong])
        out["in_process"]["pgr"] = rm.pgr(in_process["quality"], mq[weak], mq[strong])
    return out


def _f(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def render(result: dict[str, Any]) -> str:
    """A plain-text table of one result: the headline figures, then the points."""
    two = "apgr" in result or "apgr" in result.get("full_feedback", {})
    keys = ["apgr", "cpt50", "cpt80"] if two else ["aiq", "cost_to_95pct_best_frac", "quality_at_tenth_cost"]
    lines = [f"{result['table']}: {result['n_prompts']} prompts, seed {result['seed']}, {result['features']}"
             + (f"; warm start on {result['warm_start_rows']}, measured on the other {result['n_measured']}"
                if result.get("warm_start") else "")]
    for m, v in result["models"].items():
        lines.append(f"  model {m}: quality {v['quality']:.3f}, cost {v['cost']:.4g}")
    lines.append(f"  {'feedback':<10}" + "".join(f"{k:>26}" for k in keys) + f"{'passes':>8}{'seconds':>9}")
    for name, fig in (("bandit", result), ("full", result.get("full_feedback"))):
        if fig and keys[0] in fig:
            lines.append(f"  {name:<10}" + "".join(f"{_f(fig[k]):>26}" for k in keys)
                         + f"{fig['passes']:>8}{fig['seconds']:>9.1f}")
    for name, fig in (("bandit", result), ("full", result.get("full_feedback"))):
        if fig and fig.get("halves"):
            lines.append(f"  {name} {keys[0]} by half of the stream: " + ", ".join(
                f"{'first' if h == 0 else 'second'} {_f(half[keys[0]])}" for h, half in enumerate(fig["halves"])))
    for name, fig in (("bandit", result), ("full", result.get("full_feedback"))):
        if fig and fig.get("ece_per_arm"):
            lines.append(f"  {name} ECE of predicted quality per arm (cost weight {fig['ece_cost_weight']:g}): "
                         + ", ".join(f"{a} {_f(v)}" for a, v in fig["ece_per_arm"].items()))
    sv = result.get("served")
    if sv:
        ip = sv["in_process"]
        lines.append(f"  served path at cost weight {sv['cost_weight']:g}: cost {sv['cost']:.3f}, quality "
                     f"{sv['quality']:.3f}" + (f", PGR {sv['pgr']:.3f}" if "pgr" in sv else "")
                     + f" ({sum(sv['versions_judged'].values())} versions, {sv['seconds']:.0f} s); in process: cost "
                     f"{ip['cost']:.3f}, quality {ip['quality']:.3f}" + (f", PGR {ip['pgr']:.3f}" if "pgr" in ip else ""))
    for name, fig in (("bandit", result), ("full", result.get("full_feedback"))):
        if fig and "points" in fig:
            lines.append(f"  {name} points (cost weight: cost, quality, explored):")
            lines.append("    " + "  ".join(f"{p['cost_weight']:.3g}: {p['cost']:.3f}, {p['quality']:.3f}, "
                                             f"{p['explored']:.2f}" for p in fig["points"]))
    return "\n".join(lines)
