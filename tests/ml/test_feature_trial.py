"""The feature-group trial (`ml backtest --feature-groups`): candidate behaviour groups measured before they join
the features, on a real warehouse."""

from __future__ import annotations

import json
from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd


def test_the_trial_refits_every_task_and_configured_flavour_with_each_group_against_the_simulators_oracle(
    built_shop, shop_copy, capsys, monkeypatch
):
    from ml.__main__ import main
    from ml.propensity.feature_trial import GROUPS, MIN_AUC_GAIN

    shop_copy(built_shop)
    # The trial refits every family the pipeline trains; one keeps the test short (fit_flavour's four are tested
    # with training).
    flavours = ("logistic",)
    monkeypatch.setenv("SHOP_MODEL_FLAVOURS", ",".join(flavours))
    assert main(["backtest", "--feature-groups"]) == 0
    table = pd.DataFrame([json.loads(line) for line in capsys.readouterr().out.strip().splitlines()])
    assert len(table) == 2 * len(flavours) * (len(GROUPS) + 2)
    assert set(table["flavour"]) == set(flavours)
    assert set(table["features"]) == {"current", *GROUPS, "all_groups"}
    current = table[table["features"] == "current"]
    assert (current[["change", "change_low", "change_high"]] == 0).all().all() and not current["supported"].any()
    assert (table["change_low"] <= table["change_high"]).all()
    assert (table["supported"] == table["change_low"].ge(MIN_AUC_GAIN)).all()
    assert table["roc_auc"].between(0.6, 1).all() and table["n_users"].gt(300).all()
    # Each line's change is against the current features of its own task and flavour, on the same test rows.
    for (_, _), rows in table.groupby(["task", "flavour"]):
        current = rows.loc[rows["features"] == "current", "roc_auc"].item()
        assert np.allclose(rows["change"], rows["roc_auc"] - current, atol=2e-4)
        assert rows["n_users"].nunique() == 1
    assert np.allclose(table["gap_to_oracle"], table["oracle_auc"] - table["roc_auc"], atol=2e-4)


def test_candidate_groups_read_only_events_strictly_before_the_as_of_date(built_shop, shop_copy):
    from ml.propensity.feature_trial import GROUPS, candidate_features

    shop = shop_copy(built_shop)
    con = duckdb.connect(str(shop.warehouse))
    as_of = shop.remaining_days[0] - timedelta(days=7)
    # A later date in the same call: the events it reads (up to its own day) must not reach the earlier date.
    dates = [as_of, as_of + timedelta(days=7)]

    def features_on_as_of() -> pd.DataFrame:
        found = candidate_features(con, dates)
        return found[pd.to_datetime(found["as_of_date"]).dt.date == as_of].set_index("user_id").sort_index()

    before = features_on_as_of()
    assert set(before.columns) == {"as_of_date", *(c for group in GROUPS.values() for c in group)}
    user = int(before.index[before["evening_event_share_90d"] < 1][0])
    session = con.execute(
        "select session_id from int_events_checked where user_id = ? and session_id is not null limit 1", [user]
    ).fetchone()[0]
    # A late-evening view on the as-of date itself, in a session the user had: no feature of that date may move.
    con.execute(
        """
        insert into int_events_checked (event_id, event_date, event_at, event_type, user_id, session_id, category)
        values ('trial-test-1', ?, ? + interval 23 hour, 'view', ?, ?, 'books')
        """,
        [as_of, as_of, user, session],
    )
    pd.testing.assert_frame_equal(features_on_as_of(), before)
    # The same view a day earlier is in the window: the user's evening share moves.
    con.execute("update int_events_checked set event_at = event_at - interval 1 day where event_id = 'trial-test-1'")
    after = features_on_as_of()
    assert after.loc[user, "evening_event_share_90d"] != before.loc[user, "evening_event_share_90d"]
    pd.testing.assert_frame_equal(after.drop(index=user), before.drop(index=user))  # no one else moves
    con.close()
