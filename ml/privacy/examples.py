"""Model input examples made up, not copied: MLflow stores a model's input example beside it, readable by
everyone who can read the run, so it must not be a customer's feature row."""

from __future__ import annotations

import pandas as pd

# Each example row takes every column at its own quantile: a typical row, no customer's.
QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)


def synthetic_examples(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with `frame`'s columns and dtypes: numbers at the quantiles above (each column on its own, so no
    row is anyone's), other columns at their most common value."""
    rows = {}
    for column in frame.columns:
        values = frame[column].dropna()
        if values.empty:
            rows[column] = frame[column].iloc[: len(QUANTILES)].reindex(range(len(QUANTILES)))
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            rows[column] = values.quantile(list(QUANTILES), interpolation="nearest").to_numpy()
        else:
            rows[column] = [values.mode().iloc[0]] * len(QUANTILES)
    return pd.DataFrame(rows).astype(frame.dtypes.to_dict())
