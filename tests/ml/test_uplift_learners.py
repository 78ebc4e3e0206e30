"""The coupon effect learners on a planted effect: each recovers who a coupon moves; a retired learner refuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.errors import ModelError
from ml.uplift.model import DEFAULT_LEARNER, LEARNERS, CouponUpliftModel
from ml.uplift.train import SELECTION_CAMPAIGNS, SELECTION_DRAWS, put_forward, qini_draws, selection_splits


def campaign(n: int = 16_000, seed: int = 3) -> tuple[pd.DataFrame, pd.Series, np.ndarray, np.ndarray]:
    """Half control, half one of two coupons; `keen` sets the base rate, `sensitive` how much A multiplies it."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"keen": rng.random(n), "sensitive": rng.random(n), "noise": rng.random(n)})
    coupon = pd.Series(np.where(rng.random(n) < 0.5, None, rng.choice(["A", "B"], n)), dtype=object)
    base = 0.05 + 0.25 * x["keen"].to_numpy()
    multiplier = {"A": 1 + 2.0 * x["sensitive"].to_numpy(), "B": np.ones(n)}
    true_lift_a = np.minimum(base * multiplier["A"], 1) - base
    p = base.copy()
    for code, factor in multiplier.items():
        sent = (coupon == code).to_numpy()
        p[sent] = np.minimum(base[sent] * factor[sent], 1)
    return x, coupon, (rng.random(n) < p).astype(int), true_lift_a


@pytest.mark.parametrize("learner", LEARNERS)
def test_each_learner_ranks_users_by_the_planted_effect(learner):
    x, coupon, bought, true_lift_a = campaign()
    model = CouponUpliftModel(learner, seed=1).fit(x, coupon, bought)
    effects = model.predict_effects(x)
    assert list(effects.columns) == ["p_buy_7d_control", "lift_A", "lift_B"]
    assert np.corrcoef(effects["lift_A"], true_lift_a)[0, 1] > 0.7
    # Coupon A lifts on average about 0.1; B does nothing.
    assert effects["lift_A"].mean() == pytest.approx(true_lift_a.mean(), abs=0.03)
    assert abs(effects["lift_B"].mean()) < 0.03
    assert ((effects["p_buy_7d_control"] + effects["lift_A"]).between(0, 1)).all()


def test_the_offset_learner_estimates_the_effect_more_closely_than_the_t_learner():
    """The shift-only treated model carries less of the two models' noise into the lift."""
    x, coupon, bought, true_lift_a = campaign(n=8_000, seed=5)
    errors = {}
    for learner in ("t_xgboost", "offset_xgboost"):
        effects = CouponUpliftModel(learner, seed=1).fit(x, coupon, bought).predict_effects(x)
        errors[learner] = float(np.sqrt(np.mean((effects["lift_A"].to_numpy() - true_lift_a) ** 2)))
    assert errors["offset_xgboost"] < errors["t_xgboost"]


def test_a_retired_learner_asks_to_be_retrained():
    x, coupon, bought, _ = campaign(n=2_000)
    model = CouponUpliftModel("t_xgboost", seed=1).fit(x, coupon, bought)
    model.learner = "x_xgboost"  # what a model registered before the X-learner was retired unpickles as
    with pytest.raises(ModelError, match="retired x_xgboost learner.*retrain"):
        model.predict_effects(x)


def test_the_learners_are_compared_out_of_time_on_the_campaigns_before_the_newest():
    """Each earlier campaign is tested on a model of the campaigns before it; none trains on its own test."""
    x, coupon, bought, _ = campaign(n=6_000)
    sends = pd.Series(pd.date_range("2026-01-01", periods=6, freq="14D").date)
    days = sends.sample(6_000, replace=True, random_state=1)
    frame = x.assign(send_date=days.to_numpy(), sent_coupon=coupon, has_purchase_7d=bought)
    newest = max(frame["send_date"])
    splits = selection_splits(frame, list(x.columns), newest)
    assert len(splits) == SELECTION_CAMPAIGNS - 1
    tested = [split[3]["send_date"].iloc[0] for split in splits]
    assert tested == sorted(frame["send_date"].unique())[-SELECTION_CAMPAIGNS:-1]
    for _, train, _, test in splits:
        assert train["send_date"].max() < test["send_date"].iloc[0] and test["send_date"].nunique() == 1
    # Too few campaigns before one to train on: it is left out rather than tested on a thin model.
    third = sends[2]
    assert selection_splits(frame[frame["send_date"] <= third], list(x.columns), third) == []


def test_another_learner_is_put_forward_only_when_it_ranks_better_with_confidence():
    """Paired resamples: a planted-effect ranking beats noise with confidence; noise never beats the default."""
    x, coupon, bought, true_lift_a = campaign(n=8_000, seed=7)
    test = pd.DataFrame({"sent_coupon": coupon, "has_purchase_7d": bought})
    noise = np.random.default_rng(0).normal(0, 0.01, len(x))
    sharp = pd.DataFrame({"lift_A": true_lift_a, "lift_B": noise})
    blunt = pd.DataFrame({"lift_A": noise, "lift_B": noise[::-1].copy()})
    draws = qini_draws(sharp, test, seed=3)
    assert len(draws) == SELECTION_DRAWS and draws.std() > 0
    # Paired: another learner's draws use the same users, so a ranking in the same order (a learner that
    # doubles every lift) draws the very same Qinis; another seed draws other users.
    assert np.array_equal(qini_draws(2 * sharp, test, seed=3), draws)
    assert not np.array_equal(qini_draws(sharp, test, seed=4), draws)

    def candidate(learner, effects, learnt=True):
        draws = qini_draws(effects, test, seed=3)
        return {"learner": learner, "selection_qini": draws.mean(), "qini_draws": draws, "learnt_effects": learnt}

    other = next(name for name in LEARNERS if name != DEFAULT_LEARNER)
    assert put_forward([candidate(DEFAULT_LEARNER, blunt), candidate(other, sharp)])["learner"] == other
    assert put_forward([candidate(DEFAULT_LEARNER, sharp), candidate(other, blunt)])["learner"] == DEFAULT_LEARNER
    # Two rankings of noise alike: the default stays, whichever draws a slightly higher mean.
    again = pd.DataFrame({"lift_A": noise[::-1].copy(), "lift_B": noise})
    assert put_forward([candidate(DEFAULT_LEARNER, blunt), candidate(other, again)])["learner"] == DEFAULT_LEARNER
    # A default that learnt no effect at all gives way to the best learner that did, however noisy.
    flat = pd.DataFrame({"lift_A": np.zeros(len(x)), "lift_B": np.zeros(len(x))})
    chosen = put_forward([candidate(DEFAULT_LEARNER, flat, learnt=False), candidate(other, again)])
    assert chosen["learner"] == other
