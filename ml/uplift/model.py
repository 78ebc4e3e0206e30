"""Coupon effect models: what each coupon does to each user's chance to buy, learned from randomised campaigns.

The shop's campaigns send a random half of consenting users a random coupon and keep the other half as
control (`campaign_outcomes`). From them, for every coupon code c, the models estimate

    P(buy in the 7-day coupon window | no coupon)   and   lift_c = P(buy | coupon c) - P(buy | no coupon)

from the user's features as of the send date. Three candidates are fitted on the same out-of-time split
(train on earlier campaigns, test on the newest matured one):

- `t_xgboost`: T-learner, one XGBoost classifier for control users and one for treated users (the
  coupon as indicator features, so coupons share what they learn); lift = difference.
- `offset_xgboost`: the control model as above; the treated model starts from each user's control log-odds
  (XGBoost's base margin) and learns only the coupon's shift from it, in shallow trees. What it learns is
  the effect itself, regularised toward no effect, rather than a second level whose difference from the
  first carries both models' noise. Its trees split on the user or on the coupon, never both: the shift is
  the user's responsiveness plus the code's strength. On the default shop it earns 16-26% more true
  incremental margin than `t_xgboost`, 6-8% of it from the additive shift (docs/coupons.md, "Measured
  against the truth"); the X-learner (Kunzel et al. 2019) it replaced earned 20% less than the T-learner there.
- `t_logistic`: T-learner on logistic regressions, the baseline.

Each is logged to MLflow (experiment `shop_coupon_uplift`) with Qini, AUUC and uplift at the top 10/20/30%
(definitions in ml.uplift.metrics) and bootstrap intervals, and the uplift-by-decile plot, and registered as
`coupon_uplift`; the one put forward (ml.uplift.train.put_forward) becomes `@champion` only if it beats the
champion on the same test campaign with a Qini above zero. Which targeting policy leads is decided apart,
from realised results (ml.targeting.policy_gate).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ml.config import settings
from ml.errors import ModelError
from ml.propensity.datasets import feature_columns, user_sample
from ml.propensity.estimators import make_preprocessor
from ml.registry.vetting import TRAINING_EXPERIMENTS
from ml.uplift.metrics import bootstrap_uplift_metrics, uplift_by_decile
from ml.warehouse.read import table_names

log = logging.getLogger(__name__)
EXPERIMENT = TRAINING_EXPERIMENTS["coupon_uplift"]
LEARNERS = ("t_xgboost", "offset_xgboost", "t_logistic")
# The learner put forward unless another ranks better with confidence (ml.uplift.train.put_forward).
DEFAULT_LEARNER = "offset_xgboost"
CONTROL_COLUMN = "p_buy_7d_control"
MIN_TRAIN_CAMPAIGNS = 2


def lift_column(code: str) -> str:
    return f"lift_{code}"


def _classifier(base: str, seed: int):
    if base == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=0.5, max_iter=2000, random_state=seed)
    from xgboost import XGBClassifier

    return XGBClassifier(**_xgb_params(seed), eval_metric="logloss")


def _shift_classifier(seed: int, n_features: int, n_codes: int):
    """The offset learner's treated model: shallow, slowly learnt trees, as a coupon's shift varies less than the
    level. A tree splits on the user's features or on the coupon, never both (XGBoost's interaction constraints):
    the shift in log-odds is the user's responsiveness plus the code's strength, so every coupon's sends teach
    the same responsiveness instead of each code learning its own from an eighth of them."""
    from xgboost import XGBClassifier

    groups = [list(range(n_features)), list(range(n_features, n_features + n_codes))]
    params = {"max_depth": 2, "n_estimators": 300, "learning_rate": 0.03, "interaction_constraints": str(groups)}
    return XGBClassifier(**{**_xgb_params(seed), **params}, eval_metric="logloss")


def _xgb_params(seed: int) -> dict[str, Any]:
    return {
        "n_estimators": 250,
        "learning_rate": 0.05,
        "max_depth": 3,
        "min_child_weight": 30,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 5.0,
        "tree_method": "hist",
        "random_state": seed,
        "n_jobs": 2,
    }


class CouponUpliftModel:
    """Per-coupon effect estimates from a T- or X-learner over one shared preprocessing step."""

    def __init__(self, learner: str, seed: int = 42):
        if learner not in LEARNERS:
            raise ValueError(f"unknown learner {learner!r}; choose one of {', '.join(LEARNERS)}")
        self.learner = learner
        self.seed = seed

    @property
    def base(self) -> str:
        return self.learner.split("_", 1)[1]

    def _with_coupon(self, features: np.ndarray, codes) -> np.ndarray:
        """Append one indicator column per coupon: the treated-outcome model is shared by all coupons."""
        codes = np.broadcast_to(np.asarray(codes, dtype=object), (len(features),))
        indicators = np.column_stack([(codes == code).astype(float) for code in self.codes])
        return np.hstack([features, indicators])

    def fit(self, x: pd.DataFrame, coupon: pd.Series, outcome: np.ndarray) -> CouponUpliftModel:
        """`coupon`: the code each user was sent, None/NaN for control users; `outcome`: bought in the window.

        One outcome model for control users and one for treated users of every coupon (the coupon as
        indicator features), so each coupon borrows strength from the others: coupons move the same
        people, by different amounts.
        """
        self.columns = list(x.columns)
        self.prep = make_preprocessor(self.columns, scale=self.base == "logistic").fit(x)
        features = np.asarray(self.prep.transform(x), dtype=float)
        y = np.asarray(outcome, dtype=int)
        control = coupon.isna().to_numpy()
        self.codes = sorted(coupon.dropna().unique())
        self.control_model = _classifier(self.base, self.seed).fit(features[control], y[control])
        treated = self._with_coupon(features[~control], coupon[~control].to_numpy())
        if self.learner == "offset_xgboost":
            self.treated_model = _shift_classifier(self.seed, features.shape[1], len(self.codes)).fit(
                treated, y[~control], base_margin=self.control_model.predict(features[~control], output_margin=True)
            )
        else:
            self.treated_model = _classifier(self.base, self.seed).fit(treated, y[~control])
        return self

    def predict_effects(self, x: pd.DataFrame) -> pd.DataFrame:
        """`p_buy_7d_control` and one `lift_<CODE>` column per coupon, one row per input row."""
        if self.learner not in LEARNERS:
            raise ModelError(
                f"this coupon_uplift version is a retired {self.learner} learner (its effects would not be what it "
                f"was registered with): retrain (python -m ml train) or roll back to a {', '.join(LEARNERS)} version"
            )
        features = np.asarray(self.prep.transform(x[self.columns]), dtype=float)
        p_control = self.control_model.predict_proba(features)[:, 1]
        offset = self.learner == "offset_xgboost"
        shift_from = self.control_model.predict(features, output_margin=True) if offset else None
        out = {CONTROL_COLUMN: p_control}
        for code in self.codes:
            with_coupon = self._with_coupon(features, code)
            if shift_from is not None:
                lift = self.treated_model.predict_proba(with_coupon, base_margin=shift_from)[:, 1] - p_control
            else:
                lift = self.treated_model.predict_proba(with_coupon)[:, 1] - p_control
            # A probability cannot go below 0 or above 1: clip the implied treated probability.
            out[lift_column(code)] = np.clip(p_control + lift, 0.0, 1.0) - p_control
        return pd.DataFrame(out, index=x.index)


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """The MLflow face of a CouponUpliftModel (the UI, `mlflow models serve`): predict returns its effect table.

    Logged as models-from-code (ml/uplift/mlflow_model.py) with the model as a skops file, so the registry
    holds no pickle; the pipeline itself loads only the skops file (ml.registry.vetting).
    """

    def __init__(self, model: CouponUpliftModel | None = None):
        self.model = model

    def load_context(self, context) -> None:
        import skops.io as sio

        from ml.registry.vetting import UPLIFT_ARTIFACT, UPLIFT_TRUSTED_TYPES

        self.model = sio.load(context.artifacts[UPLIFT_ARTIFACT], trusted=UPLIFT_TRUSTED_TYPES)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict_effects(model_input)


def load_campaigns(con) -> tuple[pd.DataFrame, list[str]]:
    """Matured randomised campaign sends joined to the users' features as of the send date.

    A control user whom one of the pipeline's send lists reached inside the campaign's coupon window is
    no longer untreated: such rows are left out. The send lists pick users by their features (and random
    arm and holdout draws), so leaving them out keeps the comparison fair for users with the same features.
    """
    columns = feature_columns(con)
    tables = table_names(con)
    reached = (
        """and not exists (
               select 1 from coupon_targets as t
               where t.user_id = o.user_id and not t.is_holdout and not o.is_treatment
                 and t.as_of_date >= o.send_date and t.as_of_date < o.send_date + 7)"""
        if "coupon_targets" in tables
        else ""
    )
    # As for the propensity models' snapshots: at most SHOP_TRAIN_MAX_USERS users per campaign, one hash sample.
    biggest = con.execute(
        "select coalesce(max(n), 0) from (select count(*) as n from campaign_outcomes group by send_date)"
    )
    share = min(1.0, settings().train_max_users / max(biggest.fetchone()[0], 1))
    frame = con.execute(
        f"""
        select f.*, o.campaign_id, o.send_date, o.is_treatment, o.coupon_code as sent_coupon,
               o.has_purchase_7d, o.revenue_7d, o.coupon_cost_7d
        from campaign_outcomes as o
        join user_features as f on f.user_id = o.user_id and f.as_of_date = o.send_date
        where {user_sample(share, "o.user_id")} {reached}
        order by o.send_date, o.user_id
        """
    ).df()
    frame["send_date"] = pd.to_datetime(frame["send_date"]).dt.date
    return frame, columns


def campaign_split(frame: pd.DataFrame, test_date: date | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on campaigns sent before the test campaign (default: the newest matured one)."""
    dates = sorted(frame["send_date"].unique()) if len(frame) else []
    if test_date is None and dates:
        test_date = dates[-1]
    train_dates = [d for d in dates if d < test_date] if test_date is not None else []
    if test_date not in dates or len(train_dates) < MIN_TRAIN_CAMPAIGNS:
        raise ModelError(
            f"coupon effects need randomised campaigns (treatment and control in coupon_sends) whose 7-day window "
            f"has landed: {MIN_TRAIN_CAMPAIGNS} to train on and a later one to test; found {len(dates)} "
            f"({', '.join(str(d) for d in dates) or 'none'}). Without campaigns the propensity policy stays."
        )
    return frame[frame["send_date"].isin(train_dates)], frame[frame["send_date"] == test_date]


def evaluate_effects(effects: pd.DataFrame, test: pd.DataFrame, n_boot: int, seed: int) -> dict[str, float]:
    """Uplift metrics per coupon on the test campaign (its treated users vs all its controls), and their mean."""
    metrics: dict[str, float] = {}
    per_code = []
    control = test["sent_coupon"].isna().to_numpy()
    for code in sorted(test["sent_coupon"].dropna().unique()):
        rows = control | (test["sent_coupon"] == code).to_numpy()
        if lift_column(code) not in effects:
            continue
        found = bootstrap_uplift_metrics(
            effects.loc[rows, lift_column(code)].to_numpy(),
            ~control[rows],
            test.loc[rows, "has_purchase_7d"].to_numpy(dtype=float),
            n_boot=n_boot,
            seed=seed,
        )
        per_code.append(found)
        metrics.update({f"{code}_{name}": value for name, value in found.items()})
    for name in per_code[0] if per_code else []:
        metrics[f"mean_{name}"] = float(np.nanmean([m[name] for m in per_code]))
    return metrics


def pooled_deciles(effects: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Uplift by decile with every test user scored by the lift of the coupon they got (controls: the mean lift)."""
    lifts = effects[[c for c in effects if c.startswith("lift_")]]
    sent = test["sent_coupon"]
    score = lifts.mean(axis=1).to_numpy().copy()
    for code in sent.dropna().unique():
        mask = (sent == code).to_numpy()
        score[mask] = effects.loc[mask, lift_column(code)].to_numpy()
    return uplift_by_decile(score, sent.notna().to_numpy(), test["has_purchase_7d"].to_numpy(dtype=float))
