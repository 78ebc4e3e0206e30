"""What a model version saw when it was trained, kept as bins, and how far today's data has moved from it.

At training, each input's distribution on the test snapshot and the distribution of the version's test
scores are summarised as bins (deciles of the numeric values plus a bin for missing, the share of each
category) and logged with the run (`monitoring/reference.json`). The monitor compares a day's inputs and
scores with them by the population stability index:

    PSI = sum over bins of (today's share - reference share) x ln(today's share / reference share)

with shares floored at 0.0001 so an empty bin counts as rare rather than infinite. The usual reading, which
ml.monitoring.checks uses as its bands: below 0.1 no real change, 0.1 to 0.25 a moderate shift, above 0.25 a
major one. Only bin edges and shares are kept: no customer's row leaves the warehouse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REFERENCE_ARTIFACT = "monitoring/reference.json"
SCORE = "__score__"  # the version's own probabilities, next to its inputs
N_BINS = 10
FLOOR = 1e-4


def numeric_bins(values: np.ndarray) -> dict:
    """Decile edges of the non-missing values and the shares of each bin, the missing ones last."""
    values = np.asarray(values, dtype=float)
    present = values[~np.isnan(values)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, N_BINS + 1)[1:-1])) if len(present) else np.array([])
    return {"kind": "numeric", "edges": edges.tolist(), "shares": numeric_shares(edges, values).tolist()}


def numeric_shares(edges, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    counts = np.bincount(np.searchsorted(np.asarray(edges), values[~missing], side="right"), minlength=len(edges) + 1)
    counts = np.append(counts, missing.sum())
    return counts / max(len(values), 1)


def categorical_bins(values: pd.Series) -> dict:
    shares = values.astype(str).value_counts(normalize=True)
    return {"kind": "categorical", "categories": shares.index.tolist(), "shares": shares.tolist()}


def categorical_shares(categories: list[str], values: pd.Series) -> np.ndarray:
    """Shares of the reference's categories, then of everything else."""
    counts = values.astype(str).value_counts()
    known = np.array([counts.get(c, 0) for c in categories], dtype=float)
    return np.append(known, counts.sum() - known.sum()) / max(len(values), 1)


def reference_bins(inputs: pd.DataFrame, scores: np.ndarray) -> dict[str, dict]:
    """Bins of every input column and of the scores, from the rows a version was tested on."""
    bins = {SCORE: numeric_bins(scores)}
    for column in inputs.columns:
        numeric = pd.api.types.is_numeric_dtype(inputs[column])
        bins[column] = numeric_bins(inputs[column].to_numpy()) if numeric else categorical_bins(inputs[column])
    return bins


def psi(reference: dict, values) -> float:
    """Population stability index of `values` against one column's reference bins."""
    if reference["kind"] == "numeric":
        actual = numeric_shares(reference["edges"], np.asarray(values, dtype=float))
    else:
        actual = categorical_shares(reference["categories"], pd.Series(values))
    return psi_of_shares(reference, actual)


def psi_of_shares(reference: dict, actual: np.ndarray) -> float:
    """Population stability index of the shares in the reference's bins (`numeric_shares`, `categorical_shares`
    or `shares_in_sql`)."""
    expected = np.asarray(reference["shares"], dtype=float)
    if reference["kind"] != "numeric":
        expected = np.append(expected, 0.0)  # the reference saw no category outside its own
    expected, actual = np.maximum(expected, FLOOR), np.maximum(np.asarray(actual, dtype=float), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def shares_in_sql(con, reference: dict, column: str, rows: str, params: list) -> np.ndarray:
    """The shares of `column` over `rows` (a SQL `from ... where ...` clause with `params`) in the reference's
    bins, as `numeric_shares` or `categorical_shares` would give them from the values: the engine counts, and
    only one row per bin leaves it, however many users there are."""
    quoted = '"' + column.replace('"', '""') + '"'
    if reference["kind"] == "numeric":
        edges = [float(edge) for edge in reference["edges"]]
        value = f"try_cast({quoted} as double)"
        # As np.searchsorted(edges, value, side="right"): the number of edges at or below the value.
        above = " + ".join(f"({value} >= ?)::int" for _ in edges) or "0"
        missing = len(edges) + 1
        counted = con.execute(
            f"select case when {value} is null or isnan({value}) then {missing} else {above} end as bin, count(*) "
            f"{rows} group by 1",
            [*edges, *params],
        ).fetchall()
        counts = np.zeros(len(edges) + 2)
        for bin_index, n in counted:
            counts[bin_index] += n
    else:
        counted = dict(
            con.execute(
                f"select coalesce(cast({quoted} as varchar), 'unknown') as category, count(*) {rows} group by 1",
                params,
            ).fetchall()
        )
        known = np.array([counted.get(c, 0) for c in reference["categories"]], dtype=float)
        counts = np.append(known, sum(counted.values()) - known.sum())
    return counts / max(counts.sum(), 1)
