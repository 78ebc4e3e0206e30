"""The sequence network's inputs and the network itself, on real DuckDB tables and real fits.

- Each user's activity sequence keeps to the point-in-time rule: the day before the as-of date is the last step,
  the as-of date itself and days older than the window are not read, and other users' days are not mixed in.
- The network learns an order-in-time signal that no window total carries, and what it learned survives the
  skops round trip the registry uses.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.propensity.sequences import CHANNELS, SEQUENCE_COLUMNS, SEQUENCE_DAYS, with_sequences

AS_OF = date(2026, 3, 1)


def _user_days(rows: list[tuple[int, date, int]]) -> duckdb.DuckDBPyConnection:
    """A DuckDB database holding int_user_days_aggregated with (user, day, views) rows; the other counts 1."""
    con = duckdb.connect()
    frame = pd.DataFrame(rows, columns=["user_id", "activity_date", "count_views"]).assign(
        count_sessions=1, count_carts=1, count_orders=1
    )
    con.register("user_days", frame)
    con.execute("create table int_user_days_aggregated as select * from user_days")
    return con


def test_a_sequence_holds_the_days_strictly_before_the_as_of_date_oldest_first():
    con = _user_days(
        [
            (1, AS_OF - timedelta(days=1), 5),  # yesterday: the last step
            (1, AS_OF - timedelta(days=SEQUENCE_DAYS), 7),  # the window's oldest day: the first step
            (1, AS_OF, 99),  # the as-of date itself: not before it
            (1, AS_OF - timedelta(days=SEQUENCE_DAYS + 1), 99),  # older than the window
            (2, AS_OF - timedelta(days=3), 4),
            (3, AS_OF - timedelta(days=2), 99),  # a user who is not asked for
        ]
    )
    keys = pd.DataFrame({"user_id": [2, 1, 4], "as_of_date": [AS_OF, AS_OF, AS_OF], "tenure_days": [1.0, 2.0, 3.0]})
    out = with_sequences(keys, ["tenure_days", *SEQUENCE_COLUMNS], con)
    assert list(out.index) == list(keys.index) and out["tenure_days"].tolist() == [1.0, 2.0, 3.0]
    views = out[[c for c in SEQUENCE_COLUMNS if c.startswith("seq_views_")]].to_numpy()
    assert views[1, -1] == 5 and views[1, 0] == 7 and views[1].sum() == 12
    assert views[0, -3] == 4 and views[0].sum() == 4
    assert views[2].sum() == 0  # no activity: zeros, not missing
    assert out["seq_sessions_d01"].tolist() == [0.0, 1.0, 0.0]
    assert len(SEQUENCE_COLUMNS) == SEQUENCE_DAYS * len(CHANNELS)


def test_a_model_without_sequence_inputs_leaves_the_frame_as_it_is():
    keys = pd.DataFrame({"user_id": [1], "as_of_date": [AS_OF]})
    assert with_sequences(keys, ["tenure_days"], con=None) is keys  # no warehouse is opened either


@pytest.mark.slow
def test_the_network_learns_the_order_of_days_and_keeps_it_through_skops(tmp_path):
    """Half the users were active in the last week, half three weeks earlier, with the same totals: only the
    order of the days tells which will buy. The network finds it; the saved and loaded model predicts the same."""
    import skops.io as sio
    from sklearn.metrics import roc_auc_score

    from ml.propensity.sequence_network import SequenceNetwork
    from ml.registry.vetting import PROPENSITY_TRUSTED_TYPES

    rng = np.random.default_rng(0)
    n = 6000
    recent = rng.random(n) < 0.5
    sequence = np.zeros((n, SEQUENCE_DAYS, len(CHANNELS)))
    for row in range(n):
        days = rng.choice(7, 3, replace=False) + (SEQUENCE_DAYS - 7 if recent[row] else 0)
        sequence[row, days, :] = 1.0
    y = (rng.random(n) < np.where(recent, 0.7, 0.2)).astype(int)
    frame = pd.DataFrame(sequence.reshape(n, -1), columns=SEQUENCE_COLUMNS).assign(noise=rng.normal(size=n))
    train, test = frame.iloc[:4000], frame.iloc[4000:]
    network = SequenceNetwork(max_epochs=15, seed=0).fit(train, y[:4000])
    auc = roc_auc_score(y[4000:], network.predict_proba(test)[:, 1])
    assert auc > 0.7, auc  # the truth's own AUC here is about 0.75
    path = tmp_path / "network.skops"
    sio.dump(network, path)
    loaded = sio.load(path, trusted=[*sio.get_untrusted_types(file=path)])
    assert set(sio.get_untrusted_types(file=path)) <= set(PROPENSITY_TRUSTED_TYPES)
    np.testing.assert_allclose(loaded.predict_proba(test), network.predict_proba(test), rtol=0, atol=1e-12)
    per_column, base = network.input_contributions(test.to_numpy()[:50])
    np.testing.assert_allclose(
        per_column.sum(axis=1) + base, network.decision_function(test.to_numpy()[:50]), atol=1e-6
    )
