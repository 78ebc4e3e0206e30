"""The synthetic shop: deterministic for a seed, realistic rates, truth kept apart."""

from __future__ import annotations

import hashlib
from datetime import date

import pandas as pd
import pytest

from ml.simulate import ShopSpec, simulate


def _digest(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(pd.read_parquet(p).to_csv().encode()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    }


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path, monkeypatch):
    spec = ShopSpec(seed=3, users=300, days=20, start=date(2026, 2, 1))
    digests = []
    for run, seed in (("a", 3), ("b", 3), ("c", 4)):
        monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path / run))
        simulate(ShopSpec(seed=seed, users=spec.users, days=spec.days, start=spec.start))
        digests.append(_digest(tmp_path / run / "inbox"))
    assert digests[0] == digests[1]
    assert len(digests[0]) >= 20 + 2  # a file per day plus users and products
    assert digests[0] != digests[2]


def test_a_day_does_not_depend_on_how_far_the_simulation_runs(tmp_path, monkeypatch):
    for run, days in (("short", 10), ("long", 15)):
        monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path / run))
        simulate(ShopSpec(seed=5, users=300, days=15, start=date(2026, 3, 1)), through=date(2026, 3, 1 + days - 1))
    day = "events/events_2026-03-08.parquet"
    short = pd.read_parquet(tmp_path / "short" / "inbox" / day)
    long = pd.read_parquet(tmp_path / "long" / "inbox" / day)
    pd.testing.assert_frame_equal(short, long)


def test_rates_and_oracle_auc_are_in_the_documented_range(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path))
    stats = simulate(ShopSpec(seed=42, users=5000, days=180))
    assert 0.05 <= stats["purchase_rate_30d"] <= 0.30
    assert 0.70 <= stats["oracle_auc_purchase_30d"] <= 0.88
    assert stats["recently_active_users"] > 1000


def test_events_have_the_documented_schema_and_pii_stays_in_the_users_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path))
    simulate(ShopSpec(seed=1, users=400, days=30))
    events = pd.read_parquet(tmp_path / "inbox" / "events")
    assert set(events["event_type"]) == {"view", "cart", "remove_from_cart", "purchase"}
    assert {"event_at", "event_type", "user_id", "product_id", "price", "session_id"} <= set(events.columns)
    purchases = events[events["event_type"] == "purchase"]
    assert purchases["order_id"].notna().all() and (purchases["price"] > 0).all()
    assert not {"email", "phone"} & set(events.columns)
    users = pd.read_parquet(tmp_path / "inbox" / "users.parquet")
    assert users["email"].str.contains("@").all()
    sends = pd.read_parquet(tmp_path / "inbox" / "coupon_sends")
    assert set(sends["group_name"]) == {"treatment", "control"}
    assert sends.loc[sends["group_name"] == "control", "coupon_code"].isna().all()
    truth = pd.read_parquet(tmp_path / "truth" / "probabilities")
    assert truth["p_purchase_30d"].between(0, 1).all()
    assert not (tmp_path / "inbox" / "user_traits.parquet").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "--users", "0"], "must be positive"),
        (["simulate", "--start", "2026-13-01"], "not a date"),
    ],
)
def test_bad_cli_arguments_are_clear_errors(argv, message, capsys):
    from ml.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
