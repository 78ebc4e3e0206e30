"""BG/NBD repeat-purchase model: how likely a customer is still active and how much they will buy next.

The beta-geometric/negative-binomial model of Fader, Hardie & Lee (2005), "'Counting your customers' the
easy way: An alternative to the Pareto/NBD model", Marketing Science 24(2). While alive, a customer makes
repeat purchases as a Poisson process with rate lambda ~ Gamma(r, alpha); after each repeat purchase they drop
out for good with probability p ~ Beta(a, b). Per customer it needs only x (repeat purchase days: distinct
purchase days after the first), t_x (days from first to last purchase day) and T (days from first purchase to
the as-of date), so time is in days and alpha is in days too; customers who never bought have NaN and get NaN.

The four parameters are fitted by maximum likelihood (paper eq. 6) on the training rows only, so features
built from them are point in time: a scored row only uses its own history and the fitted population prior.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ml.errors import ModelError

MIN_ROWS = 20
# skops refuses unknown types on load; the transformer is the only one this module adds.
SKOPS_TRUSTED_TYPES = ["ml.propensity.bgnbd.BgNbdFeatures"]


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted population parameters: purchase rate ~ Gamma(r, alpha [days]), dropout ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _arrays(*values) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in values]


def _neg_loglik(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray) -> float:
    """Mean negative log-likelihood per customer (paper eq. 6), with weights for duplicate rows."""
    r, alpha, a, b = np.exp(log_params)
    repeat = x > 0
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    alive_term = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    # Second term (dropped out right after the last purchase) exists only for x > 0; b + x - 1 > 0 there.
    x_safe = np.where(repeat, x, 1.0)
    dead_term = betaln(a + 1, b + x_safe - 1) - (r + x) * np.log(alpha + t_x)
    ll = common + np.where(repeat, np.logaddexp(alive_term, dead_term), alive_term)
    value = -np.dot(w, ll) / w.sum()
    return float(value) if np.isfinite(value) else 1e300  # steer the optimiser away from overflow


def fit_bgnbd(x, t_x, T, max_rows: int = 200_000, seed: int = 0) -> BgNbdParams:
    """Fits the BG/NBD parameters by maximum likelihood.

    Args:
        x: Repeat purchase days per customer; NaN rows (never purchased) are ignored.
        t_x: Days between first and last purchase day.
        T: Days between first purchase and the as-of date.
        max_rows: Larger inputs are subsampled to this many rows (deterministic for the seed).
        seed: Seed of the subsample.

    Returns:
        The fitted parameters.

    Raises:
        ModelError: Too few valid rows, no repeat purchases at all, inconsistent inputs, or no convergence.
    """
    x, t_x, T = _arrays(x, t_x, T)
    valid = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T)
    x, t_x, T = x[valid], t_x[valid], T[valid]
    if len(x) < MIN_ROWS:
        raise ModelError(f"BG/NBD needs at least {MIN_ROWS} customers with purchases to fit, got {len(x)}")
    if (x < 0).any() or (t_x < 0).any() or (t_x > T + 1e-9).any():
        raise ModelError("BG/NBD inputs are inconsistent: need x >= 0 and 0 <= t_x <= T (days)")
    if not (x > 0).any():
        raise ModelError(f"BG/NBD cannot be fitted: none of the {len(x)} customers has a repeat purchase")
    if len(x) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False))
        x, t_x, T = x[keep], t_x[keep], T[keep]
    # Day-valued statistics repeat a lot; fitting on unique rows with counts is exact and much faster.
    rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    args = (rows[:, 0], rows[:, 1], rows[:, 2], counts.astype(float))
    # Start with a Gamma(1, alpha) rate that matches the mean observed repeat rate.
    alpha0 = max(float(T.mean()) / max(float(x.mean()), 1e-3), 1e-2)
    start = np.log([1.0, alpha0, 0.5, 2.0])
    bounds = [(-12.0, 12.0), (-12.0, 15.0), (-12.0, 12.0), (-12.0, 12.0)]
    result = minimize(_neg_loglik, start, args=args, method="L-BFGS-B", bounds=bounds)
    if not result.success:  # derivative-free polish is slower but does not stall on a noisy gradient
        result = minimize(_neg_loglik, result.x, args=args, method="Nelder-Mead", options={"maxiter": 4000})
    if not np.isfinite(result.fun) or result.fun >= 1e300:
        raise ModelError(f"BG/NBD likelihood did not converge: {result.message}")
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BgNbdParams(r=r, alpha=alpha, a=a, b=b)


def _log_dead_odds(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """log of P(dropped out) / P(alive) given the history (paper eq. 13); -inf for x == 0, NaN if any input is."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x_safe = np.where(x > 0, x, 1.0)
    odds = np.log(a) - np.log(b + x_safe - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    missing = np.isnan(x) | np.isnan(t_x) | np.isnan(T)
    return np.where(missing, np.nan, np.where(x > 0, odds, -np.inf))


def probability_alive(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """P(alive at T | x, t_x, T): 1 for x == 0 (dropout only follows a repeat purchase), NaN where inputs are NaN."""
    x, t_x, T = _arrays(x, t_x, T)
    with np.errstate(invalid="ignore"):
        return expit(-_log_dead_odds(params, x, t_x, T))


def expected_purchases(params: BgNbdParams, t, x, t_x, T) -> np.ndarray:
    """Expected repeat purchases in (T, T + t] given the history (paper eq. 10); NaN where inputs are NaN.

    Eq. 10 contains (1 - z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) with z = t / (alpha + T + t); for large x the 2F1 can
    overflow while the power underflows. Euler's transformation turns the product into the exactly equal
    (1 - z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose series stays close to 1 for any x and T.
    """
    x, t_x, T = _arrays(x, t_x, T)
    t = np.asarray(t, dtype=float)
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a if abs(params.a - 1.0) > 1e-6 else 1.0 + 1e-6  # eq. 10 is 0/0 at a == 1; the limit is smooth
    with np.errstate(invalid="ignore"):
        z = t / (alpha + T + t)
        tail = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
        if_alive = (a + b + x - 1) / (a - 1) * (1 - tail)
        return if_alive * expit(-_log_dead_odds(params, x, t_x, T))


def output_columns(horizon_days: int = 30) -> list[str]:
    """Names of the columns BgNbdFeatures adds."""
    return ["bgnbd_p_alive", f"bgnbd_expected_purchases_{horizon_days}d"]


class BgNbdFeatures(TransformerMixin, BaseEstimator):
    """Adds P(alive) and expected purchases over the next horizon_days from a BG/NBD fitted on the fit rows.

    Fitted parameters are stored as plain floats (r_, alpha_, a_, b_) so the transformer saves with skops.
    """

    def __init__(
        self,
        frequency_column: str = "count_repeat_purchase_days_lifetime",
        recency_column: str = "days_between_first_and_last_purchase",
        age_column: str = "days_since_first_purchase",
        horizon_days: int = 30,
        max_rows: int = 200_000,
        seed: int = 0,
    ):
        self.frequency_column = frequency_column
        self.recency_column = recency_column
        self.age_column = age_column
        self.horizon_days = horizon_days
        self.max_rows = max_rows
        self.seed = seed

    @property
    def OUTPUT_COLUMNS(self) -> list[str]:  # noqa: N802 - reads like the constant it is for a given horizon
        return output_columns(self.horizon_days)

    def _statistics(self, X: pd.DataFrame) -> list[np.ndarray]:
        if not isinstance(X, pd.DataFrame):
            raise ModelError(f"BgNbdFeatures needs a pandas DataFrame, got {type(X).__name__}")
        columns = [self.frequency_column, self.recency_column, self.age_column]
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise ModelError(f"BgNbdFeatures: input lacks column(s) {missing}")
        # to_numeric + na_value: nullable Int64 / pd.NA columns become float with NaN.
        return [pd.to_numeric(X[c], errors="coerce").to_numpy(dtype="float64", na_value=np.nan) for c in columns]

    def fit(self, X: pd.DataFrame, y=None) -> BgNbdFeatures:
        params = fit_bgnbd(*self._statistics(X), max_rows=self.max_rows, seed=self.seed)
        self.r_, self.alpha_, self.a_, self.b_ = (float(v) for v in (params.r, params.alpha, params.a, params.b))
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = len(X.columns)
        return self

    @property
    def params_(self) -> BgNbdParams:
        check_is_fitted(self, "r_")
        return BgNbdParams(r=self.r_, alpha=self.alpha_, a=self.a_, b=self.b_)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        params = self.params_
        x, t_x, T = self._statistics(X)
        p_alive_column, expected_column = self.OUTPUT_COLUMNS
        out = X.copy()
        out[p_alive_column] = probability_alive(params, x, t_x, T).astype("float64")
        out[expected_column] = expected_purchases(params, float(self.horizon_days), x, t_x, T).astype("float64")
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "r_")
        names = list(self.feature_names_in_ if input_features is None else input_features)
        return np.asarray(names + self.OUTPUT_COLUMNS, dtype=object)
