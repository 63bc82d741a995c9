"""Router metrics against values computed by hand, and their invariants."""

from __future__ import annotations

import numpy as np
import pytest

from flywheel.eval.router_metrics import (
    aiq,
    apgr,
    cost_to_95pct_best_frac,
    cpt,
    hull_cost_to_reach,
    hull_quality_at,
    non_decreasing_convex_hull,
    pgr,
    pgr_curve,
    quality_at_tenth_cost,
)

QW, QS = 0.6, 0.8  # weak and strong quality: PGR = (q - 0.6) / 0.2


def test_apgr_by_hand() -> None:
    # PGR 0.5 at share 0.1, 0.9 at 0.4 (unsorted on purpose): trapezoids
    # 0.1*(0+0.5)/2 + 0.3*(0.5+0.9)/2 + 0.6*(0.9+1)/2 = 0.025 + 0.21 + 0.57
    assert apgr([0.4, 0.1], [0.78, 0.70], QW, QS) == pytest.approx(0.805)


def test_apgr_of_reference_routers() -> None:
    shares = np.linspace(0.05, 0.95, 10)
    assert apgr(shares, QW + shares * (QS - QW), QW, QS) == pytest.approx(0.5)  # random
    assert apgr([], [], QW, QS) == pytest.approx(0.5)  # the endpoints alone
    assert apgr([0.0], [QS], QW, QS) == pytest.approx(1.0)  # all the gap at no strong call
    assert apgr([0.5], [QW], QW, QS) == pytest.approx(0.25)  # a useless half: 0.5*0/2 + 0.5*(0+1)/2


def test_cpt_by_hand() -> None:
    shares, quals = [0.1, 0.4], [0.70, 0.78]  # PGR 0.5 at 0.1, 0.9 at 0.4
    assert cpt(0.5, shares, quals, QW, QS) == pytest.approx(0.1)
    assert cpt(0.8, shares, quals, QW, QS) == pytest.approx(0.1 + 0.3 * 0.3 / 0.4)  # 0.325
    assert cpt(0.95, shares, quals, QW, QS) == pytest.approx(0.4 + 0.6 * 0.05 / 0.1)  # 0.7
    assert cpt(0.2, shares, quals, QW, QS) == pytest.approx(0.04)
    assert cpt(1.5, shares, quals, QW, QS) is None


def test_cpt_takes_the_first_crossing() -> None:
    # PGR rises to 0.6 at 0.2, falls to 0.3 at 0.5: 50% is first reached before 0.2
    assert cpt(0.5, [0.2, 0.5], [0.72, 0.66], QW, QS) == pytest.approx(0.2 * 0.5 / 0.6)


def test_pgr_curve_and_errors() -> None:
    s, g = pgr_curve([0.7, 0.2], [0.8, 0.7], QW, QS)
    assert s.tolist() == [0.0, 0.2, 0.7, 1.0] and g.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert pgr(0.9, QW, QS) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="same quality"):
        pgr(0.7, 0.7, 0.7)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        apgr([1.2], [0.7], QW, QS)
    with pytest.raises(ValueError, match="one length"):
        apgr([0.2, 0.3], [0.7], QW, QS)


def test_hull_by_hand() -> None:
    costs = [0.0, 0.2, 0.5, 1.0, 2.0, 0.5, 3.0]
    quals = [0.50, 0.55, 0.80, 0.90, 0.92, 0.60, 0.85]
    hull = non_decreasing_convex_hull(costs, quals)
    # (0.2, 0.55) lies under the chord (0, .5)-(.5, .8); (3, .85) comes after the best point
    assert hull.tolist() == [[0.0, 0.5], [0.5, 0.8], [1.0, 0.9], [2.0, 0.92]]
    assert np.all(np.diff(hull[:, 1]) > 0)
    slopes = np.diff(hull[:, 1]) / np.diff(hull[:, 0])
    assert np.all(np.diff(slopes) < 0)  # concave
    assert hull_quality_at(hull, 0.25) == pytest.approx(0.65)
    assert hull_quality_at(hull, 5.0) == pytest.approx(0.92)
    assert hull_cost_to_reach(hull, 0.85) == pytest.approx(0.75)
    assert hull_cost_to_reach(hull, 0.95) is None


def test_hull_starts_at_the_best_of_the_cheapest() -> None:
    hull = non_decreasing_convex_hull([1.0, 1.0, 2.0], [0.4, 0.6, 0.7])
    assert hull.tolist() == [[1.0, 0.6], [2.0, 0.7]]
    assert hull_quality_at(hull, 0.5) is None


def test_aiq_by_hand() -> None:
    # models: (1, 0.6), (4, 0.9); router points (2, 0.85) and (3, 0.7) (under the hull)
    # hull (1, .6) (2, .85) (4, .9): area from 1: 1*(.6+.85)/2 + 2*(.85+.9)/2 = .725 + 1.75; / 4
    assert aiq([2.0, 3.0], [0.85, 0.7], [1.0, 4.0], [0.6, 0.9]) == pytest.approx(2.475 / 4)
    # a router better than the dearest model, at less cost: flat after it
    assert aiq([2.0], [0.95], [1.0, 4.0], [0.6, 0.9]) == pytest.approx((1 * (0.6 + 0.95) / 2 + 2 * 0.95) / 4)


def test_aiq_three_models_and_a_router_that_adds_nothing() -> None:
    mc, mq = [0.0, 1.0, 2.0], [0.5, 0.8, 0.9]
    alone = aiq([], [], mc, mq)
    assert alone == pytest.approx((1 * 1.3 / 2 + 1 * 1.7 / 2) / 2)
    assert aiq([1.0, 1.5], [0.7, 0.84], mc, mq) == pytest.approx(alone)  # on or under the hull
    assert aiq([0.5], [0.8], mc, mq) > alone


def test_cost_to_95pct_and_quality_at_tenth_by_hand() -> None:
    mc, mq = [0.1, 1.0, 2.0], [0.5, 0.9, 0.85]  # best: (1.0, 0.9); 95% of it is 0.855
    pts_c, pts_q = [0.4], [0.84]  # hull (0.1, .5) (0.4, .84) (1.0, .9)
    frac = cost_to_95pct_best_frac(pts_c, pts_q, mc, mq)
    assert frac == pytest.approx(0.4 + 0.6 * (0.855 - 0.84) / 0.06)  # 0.55 of the best model's cost
    assert quality_at_tenth_cost(pts_c, pts_q, mc, mq) == pytest.approx(0.5)  # at 0.1: the cheapest model
    assert quality_at_tenth_cost(pts_c, pts_q, [0.2, 1.0], [0.5, 0.9]) is None  # nothing costs 0.1
