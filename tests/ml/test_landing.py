"""Landing your own files: clear errors naming the file, and nothing lost."""

from __future__ import annotations

import shutil
from datetime import date

import pandas as pd
import pytest

from ml.errors import LandingError
from ml.landing import ingest, land_day, land_events

DAY = date(2026, 3, 2)
GOOD_CSV = """event_at,event_type,user_id,product_id,category,price,session_id
2026-03-02T10:00:00Z,view,1,10,home,20.0,s1
2026-03-02T10:01:00Z,cart,1,10,home,20.0,s1
2026-03-02T10:02:00Z,purchase,1,10,home,20.0,s1
"""


def _partition(data_dir, day=DAY) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "landing" / "events" / f"event_date={day}" / "part-0.parquet")


def test_own_csv_lands_as_one_partition_per_day_and_replaces_it_whole(empty_env, tmp_path):
    source = tmp_path / "events_2026-03-02.csv"
    source.write_text(GOOD_CSV)
    assert land_events([source]) == {"2026-03-02": 3}
    source.write_text(GOOD_CSV.rsplit("\n", 2)[0] + "\n")  # the shop re-exports the day with 2 rows
    land_events([source])
    landed = _partition(empty_env / "data")
    assert len(landed) == 2
    assert landed["event_id"].str.startswith("h").all()  # ids derived from content when the file has none
    assert list(landed["source_file"].unique()) == ["events_2026-03-02.csv"]


def test_malformed_values_are_kept_with_their_original_text(empty_env, tmp_path):
    source = tmp_path / "events_2026-03-02.csv"
    source.write_text(GOOD_CSV + "yesterday,view,1,10,home,20.0,s1\n2026-03-02T11:00:00Z,view,abc,10,home,cheap,s2\n")
    land_events([source])
    landed = _partition(empty_env / "data")
    assert len(landed) == 5
    errors = landed["parse_errors"].dropna().tolist()
    assert errors == ["event_at=yesterday", "user_id=abc; price=cheap"]


def test_purchase_only_crm_export_becomes_purchase_events(empty_env, tmp_path):
    source = tmp_path / "crm.csv"
    source.write_text("user_id,order_date,amount,order_id\n1,2026-03-01,19.99,A1\n2,2026-03-02,5.00,A2\n")
    summary = ingest(str(source))
    assert summary["events"] == 2 and summary["event_days"] == 2
    landed = _partition(empty_env / "data", date(2026, 3, 1))
    assert landed.loc[0, "event_type"] == "purchase" and landed.loc[0, "price"] == pytest.approx(19.99)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"PAR1 this is not parquet", "cannot read as parquet"),
        (None, "missing required column(s) event_type"),
    ],
)
def test_unreadable_or_incomplete_files_fail_naming_the_file_and_keep_what_was_landed(
    empty_env, tmp_path, content, message
):
    good = tmp_path / "events_2026-03-02.csv"
    good.write_text(GOOD_CSV)
    land_events([good])
    before = _partition(empty_env / "data")
    bad = tmp_path / "events_2026-03-02.parquet"
    if content is None:
        pd.DataFrame({"event_at": ["2026-03-02"], "user_id": [1]}).to_parquet(bad)
    else:
        bad.write_bytes(content)
    with pytest.raises(LandingError) as exc:
        land_events([bad])
    assert str(bad) in str(exc.value) and message in str(exc.value)
    pd.testing.assert_frame_equal(_partition(empty_env / "data"), before)


def test_a_day_without_a_file_is_a_clear_error(empty_env):
    with pytest.raises(LandingError, match=r"no event file for 2026-03-02: expected .*events_2026-03-02.parquet"):
        land_day(DAY)


def test_cli_reports_a_bad_glob_without_a_traceback(empty_env, capsys):
    from ml.__main__ import main

    assert main(["ingest", "--events", str(empty_env / "nothing_*.csv")]) == 2
    assert "no such file or no files match" in capsys.readouterr().err


def test_users_file_with_unreadable_ids_is_refused(empty_env, tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("user_id,signup_at\n1,2026-01-01\nx7,2026-01-02\n")
    with pytest.raises(LandingError, match="users.csv: column user_id has 1 unreadable value"):
        ingest(str(tmp_path / "missing.csv"), users=str(users))
    assert not (empty_env / "data" / "landing" / "users").exists()


def test_land_day_picks_up_the_inbox_export(built_shop, shop_copy):
    shop = shop_copy(built_shop)
    day = shop.remaining_days[0]
    summary = land_day(day)
    assert summary["events"] > 0
    assert len(_partition(shop.data, day)) == summary["events"]
    shutil.rmtree(shop.data / "inbox" / "events")
    with pytest.raises(LandingError, match=f"no event file for {day}"):
        land_day(day)
