"""The budgeted allocation: one coupon per user, budget respected, nothing with negative value funded."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ml.targeting.allocation import (
    allocate,
    allocate_with_holdout,
    discount,
    funding_cutoff,
    upgrade_steps,
    value_offers,
)


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


def test_the_holdout_is_the_same_share_of_the_funded_when_cheap_offers_fill_the_budget():
    """The 1M-user shop's failure: after the budget binds, cheap low-value offers still fit in its last euros.
    The holdout must stay about its share of the users funded (10% here), not everyone above the last rate."""
    rng = np.random.default_rng(7)
    n = 20_000
    cost = np.where(rng.random(n) < 0.3, 0.01, rng.uniform(0.5, 3.0, n))  # a third are nearly free offers
    table = offers(list(zip(range(n), ["A"] * n, [0.1] * n, cost, cost * rng.lognormal(1.0, 1.0, n), strict=True)))
    is_holdout = rng.random(n) < 0.1
    treated, holdout = allocate_with_holdout(table, is_holdout, budget=2000.0)
    assert treated.attrs["first_unfunded"] is not None  # the budget binds
    assert treated["expected_cost"].sum() <= 2000.0 + 1e-9
    assert set(treated["user_id"]).isdisjoint(np.flatnonzero(is_holdout))
    assert set(holdout["user_id"]) <= set(np.flatnonzero(is_holdout))
    share = len(holdout) / (len(treated) + len(holdout))
    assert 0.07 < share < 0.13, share
    # Both groups are funded down to the same margin per euro: the holdout is a sample of the treated.
    rate = lambda picked: np.median(picked["expected_margin"] / picked["expected_cost"])  # noqa: E731
    assert rate(holdout) == pytest.approx(rate(treated), rel=0.1)


def test_the_holdout_takes_what_ranks_ahead_of_the_first_unfunded_offer_ties_by_user_id():
    # Margin per euro 10, 9, ..., 1 for users 0-9, and users 10-13 tied at 6 with user 4.
    table = offers(
        [(u, "A", 0.1, 1.0, float(10 - u)) for u in range(10)] + [(u, "A", 0.1, 1.0, 6.0) for u in range(10, 14)]
    )
    funded = allocate(table, budget=5.0)
    assert funded["user_id"].tolist() == [0, 1, 2, 3, 4]
    assert funded.attrs["first_unfunded"] == (6.0, 10, 0)
    held = [1, 3, 4, 5, 11]
    treated, holdout = allocate_with_holdout(table, table["user_id"].isin(held), budget=4.0)
    assert treated["user_id"].tolist() == [0, 2, 10, 12]  # 10, 12 and 13 tie at 6 per euro: lower ids first
    assert treated.attrs["first_unfunded"] == (6.0, 13, 0)
    # 4 and 11 tie with the cut and rank ahead of user 13; 5 (5 per euro) ranks after it.
    assert holdout["user_id"].tolist() == [1, 3, 4, 11]


def test_without_a_binding_budget_the_holdout_gets_every_fundable_offer_too():
    table = offers([(u, "A", 0.1, 1.0, float(10 - u)) for u in range(10)])
    is_holdout = np.arange(10) % 3 == 0
    treated, holdout = allocate_with_holdout(table, is_holdout, budget=100.0)
    assert treated.attrs["first_unfunded"] is None
    assert sorted(treated["user_id"]) == [1, 2, 4, 5, 7, 8]
    assert sorted(holdout["user_id"]) == [0, 3, 6, 9]


def test_the_greedy_reads_only_the_upgrades_within_its_funding_reach():
    """What lets Spark send the driver only the users the budget could reach (ml.targeting.spark_candidates):
    allocating on the users with an upgrade at or above the funding cutoff gives the same rows, treated and
    held out, as allocating on everyone, even where near-free offers of low value lie beyond the cutoff (the
    last euros are filled from within reach, so they are left as they were)."""
    rng = np.random.default_rng(11)
    n, cheap = 6000, 2000
    rows = [
        (u, code, 0.1, float(c), float(c * rng.lognormal(1.0, 0.5)))
        for u in range(n)
        for code, c in zip("ABC", np.sort(rng.uniform(1.0, 4.0, 3)), strict=True)
    ] + [(u, "A", 0.1, 0.02, 0.002) for u in range(n, n + cheap)]
    table = offers(rows)
    is_holdout = (table["user_id"] % 10 == 0).to_numpy()
    budget = 300.0
    cutoff = funding_cutoff(upgrade_steps(table[~is_holdout]), budget)
    steps = upgrade_steps(table)
    reachable = set(steps.loc[steps["efficiency"] >= cutoff, "user_id"])
    assert len(reachable) < n / 5 and max(reachable) < n  # most users, and every near-free offer, out of reach
    everyone = allocate_with_holdout(table, is_holdout, budget)
    keep = table["user_id"].isin(reachable).to_numpy()
    reached = allocate_with_holdout(table[keep], is_holdout[keep], budget)
    for full, few in zip(everyone, reached, strict=True):
        pd.testing.assert_frame_equal(full.reset_index(drop=True), few.reset_index(drop=True))
    treated, holdout = everyone
    assert budget - 4.0 < treated["expected_cost"].sum() <= budget  # all but less than one offer's cost spent
    assert len(holdout) > 0


def test_an_upgrade_too_dear_for_the_budget_does_not_shorten_the_funding_reach():
    """One offer dearer than the whole budget ranks first; the cheaper ones after it are still funded."""
    table = offers([(0, "A", 0.1, 250.0, 2500.0)] + [(u, "A", 0.1, 1.0, 5.0) for u in range(1, 300)])
    picked = allocate(table, budget=100.0)
    assert len(picked) == 100 and 0 not in set(picked["user_id"])
    assert funding_cutoff(upgrade_steps(table), 100.0) == 5.0


def test_no_budget_treats_nobody_and_holds_nobody_out():
    table = offers([(u, "A", 0.1, 1.0, 5.0) for u in range(10)])
    treated, holdout = allocate_with_holdout(table, np.arange(10) % 2 == 0, budget=0.0)
    assert treated.empty and holdout.empty
    assert funding_cutoff(upgrade_steps(table), 0.0) == float("inf")
