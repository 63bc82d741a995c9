"""Router quality figures: RouteLLM's APGR and CPT for two models, RouterBench's AIQ for more.

Two models (RouteLLM, arXiv 2406.18665; `routellm/evals/evaluate.py`): a router's point is
(share of calls to the strong model, mean quality). Its performance gap recovered is
PGR = (quality - q_weak) / (q_strong - q_weak). APGR is the area under PGR against the
share from 0 to 1; here the curve always runs through (0, 0) (all weak) and (1, 1) (all
strong) and is linear between the measured points sorted by share. CPT(x) is the smallest
share of strong calls at which that curve reaches PGR x (RouteLLM reports it in percent;
here it is a fraction).

Differences from RouteLLM's script, on purpose: it integrates only between its measured
shares (which, by its thresholds, run from 0% to 100%); here the endpoints are added, so a
sweep that misses the extremes is completed by the all-weak and all-strong routers, which
are always available. Its CPT interpolates share as a function of quality with `np.interp`,
which assumes quality rises with share; here it is the first crossing along the curve.

More models (RouterBench, arXiv 2403.12031; `evaluation/AIQ.py`): a router's point is
(mean cost, mean quality). The non-decreasing convex hull of a set of points is the least
concave, non-decreasing curve above them, starting at the cheapest point (any point on it
is reached by mixing two routers at random). AIQ is the area under the hull over cost from
0 to the dearest cost, divided by that cost; the hull is flat after its best point and
counts as zero below its cheapest point, as in RouterBench's code.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def pgr(quality: float, q_weak: float, q_strong: float) -> float:
    """Performance gap recovered: 0 at the weak model's quality, 1 at the strong one's.

    >>> pgr(0.75, 0.7, 0.8)
    0.5
    """
    if q_strong == q_weak:
        raise ValueError("pgr: the strong and weak models have the same quality; the gap is 0")
    return float((quality - q_weak) / (q_strong - q_weak))


def pgr_curve(
    shares: ArrayLike, qualities: ArrayLike, q_weak: float, q_strong: float
) -> tuple[np.ndarray, np.ndarray]:
    """The PGR curve (shares, PGRs) sorted by share, with (0, 0) and (1, 1) added.

    >>> s, g = pgr_curve([0.5], [0.75], 0.7, 0.8)
    >>> s.tolist(), g.tolist()
    ([0.0, 0.5, 1.0], [0.0, 0.5, 1.0])
    """
    s = np.asarray(shares, dtype=float)
    q = np.asarray(qualities, dtype=float)
    if s.shape != q.shape or s.ndim != 1:
        raise ValueError(f"pgr_curve: shares and qualities must be two 1-D sequences of one length, got {s.shape} and {q.shape}")
    if ((s < 0) | (s > 1)).any():
        raise ValueError("pgr_curve: shares of strong calls must lie in [0, 1]")
    g = np.array([pgr(v, q_weak, q_strong) for v in q])
    s = np.concatenate([[0.0], s, [1.0]])
    g = np.concatenate([[0.0], g, [1.0]])
    order = np.argsort(s, kind="stable")
    return s[order], g[order]


def apgr(shares: ArrayLike, qualities: ArrayLike, q_weak: float, q_strong: float) -> float:
    """Average performance gap recovered: area under the PGR curve over share 0..1.

    A random router (PGR = share) scores 0.5; one that recovers the whole gap with no
    strong calls scores 1.

    >>> apgr([0.5], [0.75], 0.7, 0.8)  # on the random router's diagonal
    0.5
    >>> round(apgr([0.2, 0.5], [0.76, 0.78], 0.7, 0.8), 4)  # PGR 0.6 at 20%, 0.8 at 50%
    0.72
    """
    s, g = pgr_curve(shares, qualities, q_weak, q_strong)
    return float(np.sum((s[1:] - s[:-1]) * (g[1:] + g[:-1]) / 2.0))


def cpt(x: float, shares: ArrayLike, qualities: ArrayLike, q_weak: float, q_strong: float) -> float | None:
    """Call-performance threshold: the smallest share of strong calls reaching PGR x.

    None when the curve never reaches x (only possible for x > 1).

    >>> cpt(0.5, [0.2, 0.5], [0.76, 0.78], 0.7, 0.8)  # PGR 0 at 0, 0.6 at 20%
    0.16666666666666669
    >>> cpt(0.8, [0.2, 0.5], [0.76, 0.78], 0.7, 0.8)
    0.5
    >>> cpt(0.5, [0.5], [0.75], 0.7, 0.8)
    0.5
    """
    s, g = pgr_curve(shares, qualities, q_weak, q_strong)
    for j in range(len(s)):
        if g[j] >= x:
            if j == 0:
                return float(s[0])
            return float(s[j - 1] + (x - g[j - 1]) / (g[j] - g[j - 1]) * (s[j] - s[j - 1]))
    return None


def non_decreasing_convex_hull(costs: ArrayLike, qualities: ArrayLike) -> np.ndarray:
    """The hull's vertices, an (m, 2) array of (cost, quality) sorted by cost.

    It starts at the cheapest point (the best one, where several are as cheap), follows
    the upper concave hull, and stops at the best quality (the hull is flat after it).

    >>> non_decreasing_convex_hull([0, 1, 2, 0.5, 1.5], [0.5, 0.9, 0.8, 0.6, 0.95]).tolist()
    [[0.0, 0.5], [1.0, 0.9], [1.5, 0.95]]
    """
    c = np.asarray(costs, dtype=float)
    q = np.asarray(qualities, dtype=float)
    if c.shape != q.shape or c.ndim != 1 or len(c) == 0:
        raise ValueError("non_decreasing_convex_hull: costs and qualities must be two non-empty 1-D sequences of one length")
    order = np.lexsort((-q, c))  # by cost, the best first among equal costs
    hull: list[tuple[float, float]] = []
    for x, y in zip(c[order].tolist(), q[order].tolist()):
        if hull and x == hull[-1][0]:
            continue  # a dearer-or-equal point at the same cost: the best one is already in
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:  # hull[-1] is on or below the chord
                hull.pop()
            else:
                break
        hull.append((x, y))
    top = int(np.argmax([y for _, y in hull]))
    return np.array(hull[: top + 1])


def hull_quality_at(hull: np.ndarray, cost: float) -> float | None:
    """The hull's quality at `cost` (flat after its last vertex); None below its cheapest point.

    >>> h = np.array([[0.0, 0.5], [1.0, 0.9]])
    >>> hull_quality_at(h, 0.25), hull_quality_at(h, 3.0), hull_quality_at(np.array([[0.5, 0.6]]), 0.1)
    (0.6, 0.9, None)
    """
    if cost < hull[0, 0]:
        return None
    return float(np.interp(cost, hull[:, 0], hull[:, 1]))


def hull_cost_to_reach(hull: np.ndarray, quality: float) -> float | None:
    """The least cost at which the hull reaches `quality`; None if it never does.

    >>> round(hull_cost_to_reach(np.array([[0.0, 0.5], [1.0, 0.9]]), 0.8), 12)
    0.75
    """
    if hull[0, 1] >= quality:
        return float(hull[0, 0])
    for j in range(1, len(hull)):
        (x1, y1), (x2, y2) = hull[j - 1], hull[j]
        if y2 >= quality:
            return float(x1 + (quality - y1) / (y2 - y1) * (x2 - x1))
    return None


def aiq(costs: ArrayLike, qualities: ArrayLike, model_costs: ArrayLike, model_qualities: ArrayLike) -> float:
    """Average improvement in quality (RouterBench): area under the hull / the dearest cost.

    The hull is taken over the router's points and every single model's own point.

    >>> aiq([0.5], [0.85], [0.0, 1.0], [0.6, 0.9])  # hull (0, .6) (.5, .85) (1, .9)
    0.8
    >>> aiq([], [], [0.0, 1.0], [0.6, 0.9])  # the models alone: their mixtures
    0.75
    """
    c = np.concatenate([np.asarray(costs, dtype=float), np.asarray(model_costs, dtype=float)])
    q = np.concatenate([np.asarray(qualities, dtype=float), np.asarray(model_qualities, dtype=float)])
    top = float(c.max())
    if top <= 0:
        raise ValueError("aiq: every cost is 0; the area over cost is undefined")
    hull = non_decreasing_convex_hull(c, q)
    if hull[-1, 0] < top:
        hull = np.vstack([hull, [top, hull[-1, 1]]])
    xs, ys = hull[:, 0], hull[:, 1]
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0) / top)


def _best_model(model_costs: ArrayLike, model_qualities: ArrayLike) -> tuple[float, float]:
    mc = np.asarray(model_costs, dtype=float)
    mq = np.asarray(model_qualities, dtype=float)
    best = int(np.lexsort((mc, -mq))[0])  # the best quality, the cheapest among ties
    return float(mc[best]), float(mq[best])


def cost_to_95pct_best_frac(
    costs: ArrayLike, qualities: ArrayLike, model_costs: ArrayLike, model_qualities: ArrayLike
) -> float | None:
    """Cost on the hull to reach 95% of the best single model's quality, / that model's cost.

    >>> cost_to_95pct_best_frac([0.5], [0.85], [0.0, 1.0], [0.6, 0.9])  # 0.855 on the hull
    0.55
    """
    c = np.concatenate([np.asarray(costs, dtype=float), np.asarray(model_costs, dtype=float)])
    q = np.concatenate([np.asarray(qualities, dtype=float), np.asarray(model_qualities, dtype=float)])
    best_cost, best_quality = _best_model(model_costs, model_qualities)
    if best_cost <= 0:
        return None
    reach = hull_cost_to_reach(non_decreasing_convex_hull(c, q), 0.95 * best_quality)
    return None if reach is None else round(reach / best_cost, 12)


def quality_at_tenth_cost(
    costs: ArrayLike, qualities: ArrayLike, model_costs: ArrayLike, model_qualities: ArrayLike
) -> float | None:
    """The hull's quality at a tenth of the best single model's cost (None if nothing is that cheap).

    >>> quality_at_tenth_cost([0.5], [0.85], [0.0, 1.0], [0.6, 0.9])  # 0.6 + 0.1 * 0.5
    0.65
    """
    c = np.concatenate([np.asarray(costs, dtype=float), np.asarray(model_costs, dtype=float)])
    q = np.concatenate([np.asarray(qualities, dtype=float), np.asarray(model_qualities, dtype=float)])
    best_cost, _ = _best_model(model_costs, model_qualities)
    value = hull_quality_at(non_decreasing_convex_hull(c, q), 0.1 * best_cost)
    return None if value is None else round(value, 12)
