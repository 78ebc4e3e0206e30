"""The budgeted allocation: one coupon per user, budget respected, nothing with negative value funded."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ml.allocation import allocate, discount, value_offers


def offers(rows):
    return pd.DataFrame(rows, columns=["user_id", "coupon_code", "lift", "expected_cost", "expected_margin"])


def test_one_coupon_per_user_within_budget_and_best_per_euro_first():
    table = offers(
        [
            (1, "A", 0.1, 1.0, 5.0),  # 5 per euro
            (1, "B", 0.2, 3.0, 9.0),  # upgrade: +4 for +2 -> 2 per euro
            (2, "A", 0.1, 1.0, 3.0),  # 3 per euro
            (3, "A", 0.1, 2.0, 2.0),  # 1 per euro
        ]
    )
    picked = allocate(table, budget=4.0)
    assert picked["user_id"].is_unique
    assert picked["expected_cost"].sum() <= 4.0
    # 5/euro (user 1, A), 3/euro (user 2, A), then the 2/euro upgrade of user 1 to B fits (cost 1 + 1 + 2 = 4).
    assert dict(zip(picked["user_id"], picked["coupon_code"], strict=True)) == {1: "B", 2: "A"}
    assert picked.loc[picked["user_id"] == 1, "priority_rank"].item() == 1


def test_never_funds_negative_margin_or_negative_lift():
    table = offers([(1, "A", 0.1, 1.0, -0.5), (2, "A", -0.05, 0.5, 1.0), (3, "A", 0.1, 1.0, 0.5)])
    picked = allocate(table, budget=100.0)
    assert picked["user_id"].tolist() == [3]


def test_matches_brute_force_on_small_random_instances():
    """The greedy is the LP-relaxation rule: it never beats the optimum and stays close on these sizes."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        rows = [
            (u, code, 0.1, float(rng.uniform(0.5, 3)), float(rng.uniform(-1, 6))) for u in range(5) for code in "ABC"
        ]
        table = offers(rows)
        budget = float(rng.uniform(2, 8))
        greedy = allocate(table, budget)["expected_margin"].sum()
        options = [[None] + [r for r in rows if r[0] == u and r[4] > 0] for u in range(5)]
        best = 0.0
        for combo in itertools.product(*options):
            chosen = [c for c in combo if c is not None]
            if sum(c[3] for c in chosen) <= budget:
                best = max(best, sum(c[4] for c in chosen))
        assert greedy <= best + 1e-9
        assert greedy >= 0.6 * best


def test_rerun_picks_the_same_users():
    rng = np.random.default_rng(0)
    table = offers([(u, "A", 0.1, 1.0, float(rng.choice([1.0, 2.0]))) for u in range(50)])
    first = allocate(table, budget=10.0)
    again = allocate(table.sample(frac=1, random_state=1), budget=10.0)
    assert first["user_id"].tolist() == again["user_id"].tolist()


def test_offer_value_pays_the_discount_on_every_redeemed_order():
    """A coupon to a sure thing (no lift) costs its discount on the orders they would have placed anyway."""
    table = pd.DataFrame(
        {
            "user_id": [1, 2],
            "coupon_code": ["SAVE15", "EUR5OFF"],
            "lift": [0.0, 0.1],
            "p_buy_with_coupon": [0.5, 0.3],
            "order_value": [100.0, 60.0],
        }
    )
    valued = value_offers(table, margin_rate=0.4)
    assert discount(np.array([100.0, 60.0]), np.array(["SAVE15", "EUR5OFF"])).tolist() == [15.0, 5.0]
    assert valued["expected_cost"].tolist() == pytest.approx([7.5, 1.5])
    assert valued["expected_margin"].tolist() == pytest.approx([-7.5, 0.1 * 60 * 0.4 - 1.5])


def test_a_holdout_allocated_at_the_cutoff_picks_whom_the_budget_would_fund():
    table = offers([(u, "A", 0.1, 1.0, float(10 - u)) for u in range(10)])  # margin per euro 10, 9, ..., 1
    funded = allocate(table, budget=4.0)
    assert funded["user_id"].tolist() == [0, 1, 2, 3]
    assert funded.attrs["efficiency_cutoff"] == 7.0
    alike = allocate(table, budget=float("inf"), min_efficiency=funded.attrs["efficiency_cutoff"])
    assert alike["user_id"].tolist() == [0, 1, 2, 3]
    assert allocate(table, budget=100.0).attrs["efficiency_cutoff"] == 0.0  # the budget was not the limit
