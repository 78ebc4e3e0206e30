"""The model families, as sklearn pipelines: XGBoost, a logistic regression, a random forest and a feed-forward
network.

All start with the BG/NBD step (ml.propensity.bgnbd), fitted on the training rows, which adds each customer's
probability of being alive and expected purchases over the next 30 days as two more features. All take
the same input frame (numeric features, with NaN for missing, and string categoricals), so
any can be the champion and scoring does not care which. Classes are left at their natural balance:
the probabilities feed expected-value targeting, so they must stay calibrated; imbalance is handled by
judging models on ranking metrics (ROC/PR AUC, lift) and choosing the decision threshold on validation.
The forest and the network fit on a seeded sample of at most CHALLENGER_MAX_ROWS training rows: their fit time
grows with the rows much faster than XGBoost's histogram trees, and a 200k-user shop's training must stay bounded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from ml.config import MODEL_FLAVOURS
from ml.propensity.bgnbd import BgNbdFeatures
from ml.propensity.datasets import CATEGORICAL_FEATURES, model_inputs
from ml.propensity.sequences import SEQUENCE_COLUMNS, with_sequences

FLAVOURS = MODEL_FLAVOURS
CHALLENGER_MAX_ROWS = 100_000


def make_preprocessor(columns: list[str], scale: bool) -> ColumnTransformer:
    numeric = [c for c in columns if c not in CATEGORICAL_FEATURES]
    categorical = [c for c in columns if c in CATEGORICAL_FEATURES]
    if scale:
        numeric_steps = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                # arcsinh: a log for heavy-tailed counts and revenue that is defined at 0.
                ("log", FunctionTransformer(np.arcsinh, feature_names_out="one-to-one")),
                ("scale", StandardScaler()),
            ]
        )
    else:
        numeric_steps = "passthrough"  # XGBoost learns its own split for missing values
    return ColumnTransformer(
        [
            ("numeric", numeric_steps, numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ],
        verbose_feature_names_out=False,
    )


def _after_bgnbd(x_train: pd.DataFrame, model, scale: bool, seed: int) -> Pipeline:
    """The BG/NBD step, the preprocessing (scaled or not) and `model`, as one unfitted pipeline."""
    bgnbd = BgNbdFeatures(seed=seed)
    return Pipeline(
        [
            ("bgnbd", bgnbd),
            ("prep", make_preprocessor([*x_train.columns, *bgnbd.OUTPUT_COLUMNS], scale=scale)),
            ("model", model),
        ]
    )


# Each family's hyperparameters as trained when `ml tune` has chosen none (ml.propensity.tuning searches around them).
DEFAULT_PARAMS: dict[str, dict] = {
    "xgboost": {
        "learning_rate": 0.05,
        "max_depth": 4,
        "min_child_weight": 20,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 5.0,
    },
    "logistic": {"C": 0.5},
    "random_forest": {"n_estimators": 200, "min_samples_leaf": 20, "max_features": "sqrt"},
    "mlp": {},  # none: the network picks among NETWORK_SHAPES on the validation date
    "gru": {"hidden_units": 16, "learning_rate": 0.003, "alpha": 0.0001},
}
# The families whose inputs include each user's daily activity sequence (ml.propensity.sequences).
SEQUENCE_FLAVOURS = {"gru"}


def fit_logistic(x_train: pd.DataFrame, y_train: pd.Series, seed: int, tuned: dict | None = None) -> Pipeline:
    params = {**DEFAULT_PARAMS["logistic"], **(tuned or {})}
    model = LogisticRegression(**params, max_iter=2000, random_state=seed)
    return _after_bgnbd(x_train, model, scale=True, seed=seed).fit(x_train, y_train)


def _sample_rows(n: int, seed: int) -> np.ndarray:
    """At most CHALLENGER_MAX_ROWS positions of n, drawn with the seed (all of them when fewer)."""
    if n <= CHALLENGER_MAX_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, CHALLENGER_MAX_ROWS, replace=False))


def _sample(x: pd.DataFrame, y: pd.Series, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """At most CHALLENGER_MAX_ROWS of the training rows, drawn with the seed (all of them when fewer)."""
    if len(x) <= CHALLENGER_MAX_ROWS:
        return x, y
    rows = _sample_rows(len(x), seed)
    return x.iloc[rows], np.asarray(y)[rows]


def flavour_inputs(
    flavour: str,
    frames: dict[str, pd.DataFrame],
    columns: list[str],
    x: dict[str, pd.DataFrame],
    y: dict[str, np.ndarray],
    seed: int,
) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray]]:
    """The inputs and labels a family fits and is judged on: the shared tabular `x` and `y`, or for a sequence
    family the same rows with each user's activity sequence attached (its training part first cut to the sample
    it fits on, so a large shop's sequences are read for at most CHALLENGER_MAX_ROWS training rows)."""
    if flavour not in SEQUENCE_FLAVOURS:
        return x, y
    inputs = [*columns, *SEQUENCE_COLUMNS]
    out_x, out_y = {}, {}
    for part, frame in frames.items():
        labels = np.asarray(y[part])
        if part == "train":
            rows = _sample_rows(len(frame), seed)
            frame, labels = frame.iloc[rows], labels[rows]
        out_x[part], out_y[part] = model_inputs(with_sequences(frame, inputs), inputs), labels
    return out_x, out_y


def fit_random_forest(
    x_train: pd.DataFrame, y_train: pd.Series, seed: int, tuned: dict | None = None
) -> tuple[Pipeline, dict]:
    """A random forest on the same inputs as XGBoost (missing values split on, as scikit-learn's trees allow)."""
    from sklearn.ensemble import RandomForestClassifier

    params = {**DEFAULT_PARAMS["random_forest"], "max_samples": 0.5, **(tuned or {})}
    model = RandomForestClassifier(**params, n_jobs=2, random_state=seed)
    x_fit, y_fit = _sample(x_train, y_train, seed)
    pipeline = _after_bgnbd(x_fit, model, scale=False, seed=seed).fit(x_fit, y_fit)
    return pipeline, {**params, "fit_rows": len(x_fit)}


# The network shapes (hidden units, L2 penalty) `fit_mlp` tries, kept by validation AUC: a time-ordered choice
# (validation is a later date than every training snapshot). The first is the best on the default shop's backtest.
NETWORK_SHAPES = [((32,), 1e-2), ((64, 32), 1e-1), ((32, 16), 3e-2)]


def fit_mlp(
    x_train: pd.DataFrame,
    y_train: pd.Series,
    x_valid: pd.DataFrame,
    y_valid: pd.Series,
    seed: int,
    tuned: dict | None = None,
) -> tuple[Pipeline, dict]:
    """A feed-forward network of ReLU units on the logistic model's scaled inputs, stopping when a tenth of its
    training rows, held aside, stops improving; of NETWORK_SHAPES the one with the best validation ROC AUC, or
    the one shape `tuned` names (`hidden_layer_sizes` as "64+32", `alpha`)."""
    import time

    from sklearn.metrics import roc_auc_score
    from sklearn.neural_network import MLPClassifier

    started = time.perf_counter()
    x_fit, y_fit = _sample(x_train, y_train, seed)
    tried = []
    shapes = NETWORK_SHAPES
    if tuned:
        shapes = [(tuple(int(n) for n in str(tuned["hidden_layer_sizes"]).split("+")), float(tuned["alpha"]))]
    for hidden, alpha in shapes:
        model = MLPClassifier(
            hidden_layer_sizes=hidden, alpha=alpha, batch_size=256, early_stopping=True, max_iter=200, random_state=seed
        )
        pipeline = _after_bgnbd(x_fit, model, scale=True, seed=seed).fit(x_fit, y_fit)
        tried.append((roc_auc_score(y_valid, pipeline.predict_proba(x_valid)[:, 1]), hidden, alpha, pipeline))
    auc, hidden, alpha, pipeline = max(tried, key=lambda t: t[0])
    params = {
        "hidden_layer_sizes": "+".join(map(str, hidden)),
        "alpha": alpha,
        "batch_size": 256,
        "early_stopping": True,
        "fit_rows": len(x_fit),
        "epochs": int(pipeline.named_steps["model"].n_iter_),
        "shapes_tried": "; ".join(
            f"{'+'.join(map(str, h))} units, alpha {a}: valid AUC {v:.4f}" for v, h, a, _ in tried
        ),
        "tuning_seconds": round(time.perf_counter() - started, 1),
    }
    return pipeline, params


def fit_gru(x_train: pd.DataFrame, y_train, seed: int, tuned: dict | None = None) -> tuple[Pipeline, dict]:
    """The sequence network (ml.propensity.sequence_network) on the logistic model's scaled inputs plus the
    daily activity sequence, on a seeded sample of at most CHALLENGER_MAX_ROWS training rows."""
    import time

    from ml.propensity.sequence_network import SequenceNetwork

    started = time.perf_counter()
    params = {**DEFAULT_PARAMS["gru"], **(tuned or {})}
    x_fit, y_fit = _sample(x_train, y_train, seed)
    pipeline = _after_bgnbd(x_fit, SequenceNetwork(**params, seed=seed), scale=True, seed=seed)
    pipeline.named_steps["prep"].set_output(transform="pandas")  # the network finds its sequence inputs by name
    pipeline.fit(x_fit, y_fit)
    network = pipeline.named_steps["model"]
    return pipeline, {
        **params,
        "dense_units": network.dense_units,
        "batch_size": network.batch_size,
        "fit_rows": len(x_fit),
        "epochs": network.n_iter_,
        "sequence_days": 28,
        "fit_seconds": round(time.perf_counter() - started, 1),
    }


def fit_xgboost(
    x_train: pd.DataFrame,
    y_train: pd.Series,
    x_valid: pd.DataFrame,
    y_valid: pd.Series,
    seed: int,
    tuned: dict | None = None,
) -> tuple[Pipeline, dict]:
    """Fit with early stopping on the validation snapshot; return the pipeline and its parameters."""
    from xgboost import XGBClassifier

    bgnbd = BgNbdFeatures(seed=seed).fit(x_train)
    x_train, x_valid = bgnbd.transform(x_train), bgnbd.transform(x_valid)
    prep = make_preprocessor(list(x_train.columns), scale=False).fit(x_train)
    params = {
        "n_estimators": 600,
        **DEFAULT_PARAMS["xgboost"],
        **(tuned or {}),
        "tree_method": "hist",
        "eval_metric": "logloss",
        "early_stopping_rounds": 40,
        "random_state": seed,
        "n_jobs": 2,
    }
    model = XGBClassifier(**params)
    model.fit(prep.transform(x_train), y_train, eval_set=[(prep.transform(x_valid), y_valid)], verbose=False)
    params["best_iteration"] = int(model.best_iteration)
    return Pipeline([("bgnbd", bgnbd), ("prep", prep), ("model", model)]), params


def fit_flavour(
    flavour: str, x: dict[str, pd.DataFrame], y: dict[str, np.ndarray], seed: int, tuned: dict | None = None
) -> tuple[Any, dict]:
    """Fit one flavour on the train part (XGBoost stops early on the validation part), with the hyperparameters
    `ml tune` chose (`tuned`) over the family's defaults."""
    if flavour == "xgboost":
        return fit_xgboost(x["train"], y["train"], x["valid"], y["valid"], seed, tuned)
    if flavour == "random_forest":
        return fit_random_forest(x["train"], y["train"], seed, tuned)
    if flavour == "gru":
        return fit_gru(x["train"], y["train"], seed, tuned)
    if flavour == "mlp":
        return fit_mlp(x["train"], y["train"], x["valid"], y["valid"], seed, tuned)
    if flavour == "logistic":
        pipeline = fit_logistic(x["train"], y["train"], seed, tuned)
        C = pipeline.named_steps["model"].C  # noqa: N806 (scikit-learn's name)
        return pipeline, {"C": C, "max_iter": 2000, "preprocessing": "median impute + arcsinh + standardise"}
    raise ValueError(f"unknown model flavour {flavour!r}")


def feature_importance(pipeline: Pipeline) -> pd.Series:
    """Gain importance for XGBoost, impurity decrease for the forest, |coefficient| on standardised inputs for the
    logistic model, and for the network the summed |weight| from each standardised input into its hidden layer."""
    names = pipeline.named_steps["prep"].get_feature_names_out()
    model = pipeline.named_steps["model"]
    if hasattr(model, "feature_importances_"):
        values = model.feature_importances_
    elif hasattr(model, "coefs_"):
        values = np.abs(model.coefs_[0]).sum(axis=1)
    else:
        values = np.abs(model.coef_[0])
    return pd.Series(values, index=names).sort_values(ascending=False)
