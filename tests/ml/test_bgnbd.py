"""BG/NBD: recovers known parameters from its own generative process, behaves sensibly, saves with skops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from scipy.special import hyp2f1
from sklearn.pipeline import Pipeline

from ml.errors import ModelError
from ml.propensity.bgnbd import (
    SKOPS_TRUSTED_TYPES,
    BgNbdFeatures,
    BgNbdParams,
    expected_purchases,
    fit_bgnbd,
    output_columns,
    probability_alive,
)

TRUTH = BgNbdParams(r=0.5, alpha=20.0, a=0.8, b=2.5)
COLUMNS = ["count_repeat_purchase_days_lifetime", "days_between_first_and_last_purchase", "days_since_first_purchase"]


def simulate_bgnbd(params: BgNbdParams, n: int, T_days: tuple[float, float], seed: int, holdout_days: float = 30.0):
    """Draws customers from the BG/NBD process; returns x, t_x, T and the purchases in (T, T + holdout_days]."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(params.r, 1 / params.alpha, n)
    dropout = rng.beta(params.a, params.b, n)
    T = rng.uniform(*T_days, n)
    x, t_x, future, now = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        now = now + rng.exponential(1 / rate)
        alive &= now <= T + holdout_days
        observed = alive & (now <= T)
        x += observed
        t_x = np.where(observed, now, t_x)
        future += alive & (now > T)
        alive &= rng.random(n) >= dropout  # dropout only ever follows a repeat purchase
    return x, t_x, T, future


@pytest.fixture(scope="module")
def customers():
    return simulate_bgnbd(TRUTH, n=5000, T_days=(100, 500), seed=0)


def _frame(x, t_x, T) -> pd.DataFrame:
    return pd.DataFrame(dict(zip(COLUMNS, (x, t_x, T), strict=True)))


def test_fit_recovers_the_parameters_and_the_holdout_purchases(customers):
    x, t_x, T, future = customers
    fitted = fit_bgnbd(x, t_x, T)
    # Tolerances cover the spread over 100 simulation seeds; a and b trade off against each other, so they are
    # looser than r and alpha, and their ratio (mean dropout probability) is checked on its own.
    tolerance = {"r": 0.15, "alpha": 0.15, "a": 0.30, "b": 0.45}
    for name, rel in tolerance.items():
        assert getattr(fitted, name) == pytest.approx(getattr(TRUTH, name), rel=rel), (name, fitted)
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(TRUTH.a / (TRUTH.a + TRUTH.b), rel=0.15)
    predicted = expected_purchases(fitted, 30, x, t_x, T)
    assert np.isfinite(predicted).all()
    assert predicted.sum() == pytest.approx(future.sum(), rel=0.10)


def test_fit_is_deterministic_and_subsamples_by_seed(customers):
    x, t_x, T, _ = customers
    assert fit_bgnbd(x, t_x, T) == fit_bgnbd(x, t_x, T)
    sub = fit_bgnbd(x, t_x, T, max_rows=2000, seed=1)
    assert sub == fit_bgnbd(x, t_x, T, max_rows=2000, seed=1)
    assert sub != fit_bgnbd(x, t_x, T, max_rows=2000, seed=2)
    assert sub.r == pytest.approx(TRUTH.r, rel=0.3)


def test_expected_purchases_matches_the_papers_equation_10():
    """The Euler-transformed hypergeometric term equals eq. 10 taken literally where the latter is accurate."""
    p = TRUTH
    x = np.array([0, 1, 2, 5, 10, 20, 1, 3.0])
    t_x = np.array([0, 10, 50, 100, 150, 190, 5, 60.0])
    T = np.array([0, 50, 100, 200, 200, 200, 300, 60.0])
    t = 30.0
    z = t / (p.alpha + T + t)
    literal = (p.a + p.b + x - 1) / (p.a - 1)
    literal *= 1 - ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x) * hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1, z)
    literal /= 1 + (x > 0) * p.a / (p.b + x - 1) * ((p.alpha + T) / (p.alpha + t_x)) ** (p.r + x)
    np.testing.assert_allclose(expected_purchases(p, t, x, t_x, T), literal, rtol=1e-9)


def test_probability_alive_and_expected_purchases_behave():
    p = TRUTH
    assert (probability_alive(p, [0, 0, 0], [0, 0, 0], [0, 100, 2000]) == 1).all()
    # The more recent the last purchase, the more likely the customer is still around.
    t_x = np.arange(5, 201, 5.0)
    alive = probability_alive(p, np.full_like(t_x, 5), t_x, np.full_like(t_x, 200))
    assert (np.diff(alive) > 0).all() and 0 < alive[0] < alive[-1] < 1
    # With the last purchase today, more purchases mean more expected purchases.
    x = np.arange(1, 301.0)
    assert (np.diff(expected_purchases(p, 30, x, np.full_like(x, 400), np.full_like(x, 400))) > 0).all()
    # A frequent buyer who has gone quiet for half their life has most likely left, unlike an occasional one.
    assert expected_purchases(p, 30, [100], [200], [400])[0] < 1e-6 < expected_purchases(p, 30, [2], [200], [400])[0]


def test_outputs_are_finite_for_realistic_extremes_and_nan_for_never_purchased():
    x = np.array([0, 1, 10, 100, 300, 300, 300, np.nan, 3])
    t_x = np.array([0, 1000, 1500, 1999, 2000, 300, 1000, np.nan, np.nan])
    T = np.full_like(x, 2000.0)
    for params in (TRUTH, BgNbdParams(r=2.0, alpha=0.5, a=1.5, b=0.7), BgNbdParams(r=0.1, alpha=1e4, a=0.2, b=20)):
        for values in (probability_alive(params, x, t_x, T), expected_purchases(params, 30, x, t_x, T)):
            assert np.isfinite(values[:7]).all() and (values[:7] >= 0).all()
            assert np.isnan(values[7:]).all()
    a_is_one = BgNbdParams(r=0.5, alpha=20, a=1.0, b=2.5)  # eq. 10 divides by a - 1
    assert np.isfinite(expected_purchases(a_is_one, 30, [0, 4], [0, 50], [0, 90])).all()


def test_transformer_in_a_pipeline_with_never_purchased_rows_and_skops_round_trip(customers):
    x, t_x, T, _ = customers
    frame = _frame(x[:1000], t_x[:1000], T[:1000]).assign(segment="a")
    frame.loc[frame.index[:50], COLUMNS] = np.nan  # never purchased
    pipeline = Pipeline([("bgnbd", BgNbdFeatures())]).fit(frame)
    out = pipeline.transform(frame)
    new = output_columns(30)
    assert new == ["bgnbd_p_alive", "bgnbd_expected_purchases_30d"] == pipeline[-1].OUTPUT_COLUMNS
    assert list(out.columns) == [*frame.columns, *new] == list(pipeline.get_feature_names_out())
    assert (out[new].dtypes == "float64").all()
    assert out[new].iloc[:50].isna().all().all() and out[new].iloc[50:].notna().all().all()
    pd.testing.assert_frame_equal(out[frame.columns], frame)  # input columns untouched

    step = pipeline[-1]
    assert all(type(v) is float for v in (step.r_, step.alpha_, step.a_, step.b_))
    assert BgNbdFeatures().fit(frame).params_ == step.params_  # deterministic
    data = sio.dumps(pipeline)
    assert sorted(sio.get_untrusted_types(data=data)) == sorted(SKOPS_TRUSTED_TYPES)
    pd.testing.assert_frame_equal(sio.loads(data, trusted=SKOPS_TRUSTED_TYPES).transform(frame), out)


def test_transformer_horizon_names_its_column():
    assert output_columns(90) == ["bgnbd_p_alive", "bgnbd_expected_purchases_90d"]
    assert BgNbdFeatures(horizon_days=7).OUTPUT_COLUMNS[1] == "bgnbd_expected_purchases_7d"


def test_too_few_rows_or_no_repeat_purchases_raise_model_error():
    x = np.array([1.0] * 19 + [np.nan] * 100)
    with pytest.raises(ModelError, match="at least 20 customers with purchases to fit, got 19"):
        fit_bgnbd(x, x * 10, x * 20)
    with pytest.raises(ModelError, match="at least 20"):
        BgNbdFeatures().fit(_frame(x, x * 10, x * 20))
    zeros = np.zeros(50)
    with pytest.raises(ModelError, match="none of the 50 customers has a repeat purchase"):
        fit_bgnbd(zeros, zeros, zeros + 100)
    with pytest.raises(ModelError, match="lacks column"):
        BgNbdFeatures().fit(pd.DataFrame({"other": [1.0]}))
