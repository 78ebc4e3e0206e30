"""Landing your own files: every shape lands, refusals are one clear line naming the file, nothing is lost."""

from __future__ import annotations

import shutil
from datetime import date

import pandas as pd
import pytest

from ml.errors import LandingError
from ml.ingest.events import land_events
from ml.ingest.landing import ingest, land_day
from ml.privacy.pseudonyms import keyed_hashes

DAY = date(2026, 3, 2)
GOOD_CSV = """event_at,event_type,user_id,product_id,category,price,session_id
2026-03-02T10:00:00Z,view,1,10,home,20.0,s1
2026-03-02T10:01:00Z,cart,1,10,home,20.0,s1
2026-03-02T10:02:00Z,purchase,1,10,home,20.0,s1
"""


def _partition(data_dir, day=DAY) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "landing" / "events" / f"event_date={day}" / "part-0.parquet")


def _landing_files(data_dir) -> dict[str, bytes]:
    root = data_dir / "landing"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))} if root.exists() else {}


def test_own_csv_lands_and_a_smaller_re_export_merges_instead_of_replacing(empty_env, tmp_path):
    source = tmp_path / "events_2026-03-02.csv"
    source.write_text(GOOD_CSV)
    assert land_events([source])["2026-03-02"] == {
        "rows": 3,
        "added": 3,
        "updated": 0,
        "unchanged": 0,
        "partition_rows": 3,
    }
    late = tmp_path / "late_orders.csv"
    late.write_text(GOOD_CSV.splitlines()[0] + "\n2026-03-02T18:00:00Z,purchase,2,11,toys,5.0,s9\n")
    assert land_events([late])["2026-03-02"]["added"] == 1
    landed = _partition(empty_env / "data")
    assert len(landed) == 4  # the late order joined the day; the three landed events stayed
    assert landed["event_id"].str.startswith("h").all()  # ids derived from content when the file has none
    assert set(landed["source_file"]) == {"events_2026-03-02.csv", "late_orders.csv"}


def test_landing_the_same_file_again_changes_nothing(empty_env, tmp_path):
    source = tmp_path / "events_2026-03-02.csv"
    source.write_text(GOOD_CSV)
    land_events([source])
    before = _landing_files(empty_env / "data")
    counts = land_events([source])["2026-03-02"]
    assert counts["unchanged"] == 3 and counts["added"] == counts["updated"] == 0
    assert _landing_files(empty_env / "data") == before


def test_a_corrected_event_replaces_the_landed_one_by_event_id(empty_env, tmp_path):
    source = tmp_path / "events.csv"
    source.write_text("event_id,event_at,event_type,user_id,price\ne1,2026-03-02T10:00:00Z,purchase,1,20.0\n")
    land_events([source])
    source.write_text("event_id,event_at,event_type,user_id,price\ne1,2026-03-02T10:00:00Z,purchase,1,18.5\n")
    assert land_events([source])["2026-03-02"]["updated"] == 1
    landed = _partition(empty_env / "data")
    assert landed["price"].tolist() == [18.5]


def test_replace_is_only_on_request(empty_env, tmp_path):
    source = tmp_path / "events_2026-03-02.csv"
    source.write_text(GOOD_CSV)
    ingest(str(source))
    source.write_text(GOOD_CSV.rsplit("\n", 2)[0] + "\n")  # the shop re-exports the day with 2 rows
    ingest(str(source))
    assert len(_partition(empty_env / "data")) == 3
    ingest(str(source), replace=True)
    assert len(_partition(empty_env / "data")) == 2


def test_late_events_in_a_daily_export_land_in_their_own_day(empty_env, tmp_path):
    export = tmp_path / "events_2026-03-02.csv"
    export.write_text(
        GOOD_CSV + "2026-03-01T23:59:00Z,purchase,1,10,home,20.0,s0\n2026-03-04T09:00:00Z,view,1,10,home,20.0,s1\n"
    )
    per_day = land_events([export])
    assert per_day["2026-03-01"]["rows"] == 1  # a late event: its own day
    # a timestamp after the export's day stays in the export's day, where dbt quarantines it
    assert per_day["2026-03-02"]["rows"] == 4 and "2026-03-04" not in per_day


def test_a_row_dated_decades_back_stays_in_its_export_day_instead_of_opening_a_partition_there(empty_env, tmp_path):
    """A clock reset to 1970 in one row: no 1970 partition (it would pull every re-processing window and
    `ml history`'s as-of dates back to 1970); the row waits in the export's day, where dbt quarantines it."""
    from ml.ingest.reprocess_mark import marked_day

    export = tmp_path / "events_2026-03-02.csv"
    export.write_text(GOOD_CSV + "1970-01-01T00:00:00Z,purchase,1,10,home,20.0,s9\n")
    per_day = land_events([export])
    assert list(per_day) == ["2026-03-02"] and per_day["2026-03-02"]["rows"] == 4
    assert sorted(p.name for p in (empty_env / "data" / "landing" / "events").iterdir()) == ["event_date=2026-03-02"]
    assert marked_day() == DAY
    # A year back is still a late correction: it lands in its own day.
    export.write_text(GOOD_CSV + "2025-03-02T00:00:00Z,purchase,1,10,home,20.0,s9\n")
    assert "2025-03-02" in land_events([export])


def test_malformed_values_are_kept_with_the_shape_of_their_text(empty_env, tmp_path):
    """The shape, not the text: a misplaced column could put an email there (the export keeps the text)."""
    source = tmp_path / "events_2026-03-02.csv"
    source.write_text(GOOD_CSV + "yesterday,view,1,10,home,20.0,s1\n2026-03-02T11:00:00Z,view,abc,10,home,cheap,s2\n")
    land_events([source])
    landed = _partition(empty_env / "data")
    assert len(landed) == 5
    errors = sorted(landed["parse_errors"].dropna().tolist())
    assert errors == ["event_at=xxxxxxxxx", "user_id=xxx; price=xxxxx"]


def test_blank_cells_without_event_ids_land(empty_env, tmp_path):
    source = tmp_path / "events.csv"
    source.write_text(
        "event_at,event_type,user_id,product_id,price,order_id\n"
        "2026-03-02T10:00:00Z,view,1,10,20.0,\n"
        "2026-03-02T10:05:00Z,purchase,1,10,20.0,o1\n"
    )
    assert land_events([source])["2026-03-02"]["rows"] == 2
    assert _partition(empty_env / "data")["event_id"].notna().all()


@pytest.mark.parametrize("order_ids", [True, False])
@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_purchase_only_logs_become_purchase_events(empty_env, tmp_path, order_ids, file_format):
    frame = pd.DataFrame(
        {
            "user_id": ["1", "2", "2", "2"],
            "order_date": ["2026-03-01", "2026-03-02", "2026-03-02", "2026-03-02"],
            "amount": ["19.99", "5.00", "5.00", "7.50"],
        }
    )
    if order_ids:
        frame["order_id"] = ["A1", "A2", "A3", "A4"]
    source = tmp_path / f"orders.{file_format}"
    frame.to_csv(source, index=False) if file_format == "csv" else frame.to_parquet(source)
    summary = ingest(str(source))
    assert summary["events_rows"] == 4 and summary["event_days"] == 2
    day_two = _partition(empty_env / "data", date(2026, 3, 2))
    # two identical orders on one day stay two orders, with or without order ids
    assert len(day_two) == 3 and day_two["event_id"].nunique() == 3
    assert (day_two["event_type"] == "purchase").all() and sorted(day_two["price"]) == [5.0, 5.0, 7.5]
    assert ingest(str(source))["events_unchanged"] == 4  # the same log again changes nothing


def test_many_files_land_all_or_nothing(empty_env, tmp_path):
    good = tmp_path / "events_2026-03-02.csv"
    good.write_text(GOOD_CSV)
    land_events([good])
    users = tmp_path / "users.csv"
    users.write_text("user_id,signup_at\n1,2026-01-01\n2,2026-01-02\n")
    ingest(str(good), users=str(users))
    before = _landing_files(empty_env / "data")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "events_2026-03-03.csv").write_text(GOOD_CSV.replace("2026-03-02", "2026-03-03"))
    (tmp_path / "more" / "events_2026-03-04.csv").write_text("event_at,user_id\n2026-03-04,1\n")
    few_users = tmp_path / "few_users.csv"
    few_users.write_text("user_id,signup_at\n3,2026-02-01\n")
    with pytest.raises(LandingError, match="events_2026-03-04.csv: missing required column"):
        ingest(str(tmp_path / "more"), users=str(few_users))
    assert _landing_files(empty_env / "data") == before  # neither the good day nor the users table changed


def test_replace_rebuilds_the_export_day_but_late_rows_still_merge_into_theirs(empty_env, tmp_path):
    first = tmp_path / "events_2026-03-01.csv"
    first.write_text(GOOD_CSV.replace("2026-03-02", "2026-03-01"))
    land_events([first])
    second = tmp_path / "events_2026-03-02.csv"
    second.write_text(GOOD_CSV + "2026-03-01T23:00:00Z,view,2,10,home,20.0,s7\n")
    ingest(str(second), replace=True)
    assert len(_partition(empty_env / "data", date(2026, 3, 1))) == 4  # three landed + the late one
    assert len(_partition(empty_env / "data")) == 3


def test_the_same_event_in_two_files_of_one_batch_lands_once(empty_env, tmp_path):
    for name in ("orders_week1.csv", "orders_week1_and_2.csv"):
        (tmp_path / name).write_text("user_id,order_date,amount\n2,2026-03-02,5.00\n")
    assert ingest(str(tmp_path / "orders_*.csv"))["events_added"] == 1
    assert ingest(str(tmp_path / "orders_week1.csv"))["events_unchanged"] == 1
    assert len(_partition(empty_env / "data")) == 1


def test_a_correction_that_moves_an_event_across_midnight_moves_it(empty_env, tmp_path):
    source = tmp_path / "events.csv"
    source.write_text("event_id,event_at,event_type,user_id\ne1,2026-03-02T23:59:00Z,view,1\n")
    land_events([source])
    source.write_text("event_id,event_at,event_type,user_id\ne1,2026-03-03T00:01:00Z,view,1\n")
    assert land_events([source])["2026-03-02"]["moved_out"] == 1
    assert _partition(empty_env / "data").empty
    assert _partition(empty_env / "data", date(2026, 3, 3))["event_id"].tolist() == ["e1"]


def test_a_re_landed_file_is_unchanged_in_a_day_mixed_with_other_shapes(empty_env, tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("user_id,order_date,amount\n2,2026-03-02,5.00\n")
    ingest(str(orders))
    events = tmp_path / "events_2026-03-02.csv"
    events.write_text(GOOD_CSV)
    ingest(str(events))
    again = ingest(str(events))
    assert again["events_unchanged"] == 3 and again["events_updated"] == 0


def test_ids_are_exact_and_blank_ids_are_derived(empty_env, tmp_path):
    source = tmp_path / "events.csv"
    source.write_text(
        "event_id,event_at,event_type,user_id\n"
        " ,2026-03-02T10:00:00Z,view,12345678901234567\n"
        " ,2026-03-02T11:00:00Z,view,x\n"
    )
    land_events([source])
    landed = _partition(empty_env / "data")
    assert landed["event_id"].str.startswith("h").all() and landed["event_id"].nunique() == 2
    assert landed["user_id"].dropna().tolist() == [12345678901234567]


def test_a_users_file_without_some_columns_keeps_their_landed_values(empty_env, tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("user_id,signup_at,country,email,marketing_consent\n1,2026-01-01,DE,a@x.de,yes\n")
    ingest(users=str(users))
    users.write_text("user_id,signup_at\n1,2026-01-01\n2,2026-02-01\n")
    ingest(users=str(users))
    landed = pd.read_parquet(empty_env / "data" / "landing" / "users" / "users.parquet").set_index("user_id")
    # The email landed only as its keyed pseudonym, and a later file without it keeps that.
    assert "email" not in landed.columns
    assert landed.loc[1, "email_hash"] == keyed_hashes(pd.Series(["a@x.de"]), "email")[0]
    assert landed.loc[1, "country"] == "DE" and landed.loc[1, "marketing_consent"]
    assert pd.isna(landed.loc[2, "country"]) and not landed.loc[2, "marketing_consent"]
    assert pd.isna(landed.loc[2, "email_hash"])


def test_coupon_sends_without_a_campaign_id_are_refused(empty_env, tmp_path):
    sends = tmp_path / "sends.csv"
    sends.write_text("campaign_id,user_id,sent_at,group_name\n,1,2026-03-01,treatment\n")
    with pytest.raises(LandingError, match="sends.csv: column campaign_id has 1 unreadable value"):
        ingest(coupon_sends=str(sends))


def test_a_smaller_user_table_merges_into_the_landed_one(empty_env, tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("user_id,signup_at,marketing_consent\n" + "".join(f"{i},2026-01-01,yes\n" for i in range(1, 51)))
    ingest(users=str(users))
    users.write_text("user_id,signup_at,marketing_consent\n7,2026-01-01,no\n99,2026-02-01,yes\n")
    assert ingest(users=str(users))["users"] == {"rows": 2, "added": 1, "updated": 1, "unchanged": 0, "table_rows": 51}
    landed = pd.read_parquet(empty_env / "data" / "landing" / "users" / "users.parquet").set_index("user_id")
    assert len(landed) == 51 and not landed.loc[7, "marketing_consent"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("user_id;order_date;amount\n1;2026-03-01;19,99\n", "looks semicolon-separated"),
        ("event_at\tevent_type\tuser_id\n2026-03-01\tview\t1\n", "looks tab-separated"),
        ("user_id,order_date,amount\n", "has a header but no rows"),
        ("", "the file is empty"),
        ("user_id,order_date,amount\nC-001,2026-03-01,10\nC-002,2026-03-01,12\n", "no value of user_id can be read"),
        ("user_id,order_date,amount\n1,last tuesday,10\n", "no value of event_at can be read"),
        ("customer,total\n1,10\n", "missing required column(s) event_at, event_type, user_id"),
        ("user_id,amount\n1,10\n", "a purchase log needs a date column"),
        ("user_id,order_date,amount\n1,03/01/2026,10\n", "ambiguous (day/month or month/day)"),
        ('user_id,order_date,amount\n1,2026-03-01,"19,99"\n', "no value of price can be read"),
    ],
)
def test_a_refused_file_is_one_line_naming_the_file_and_the_fix_and_lands_nothing(
    empty_env, tmp_path, capsys, content, message
):
    from ml.__main__ import main

    good = tmp_path / "events_2026-03-02.csv"
    good.write_text(GOOD_CSV)
    land_events([good])
    before = _landing_files(empty_env / "data")
    bad = tmp_path / "export.csv"
    bad.write_text(content)
    capsys.readouterr()
    assert main(["ingest", "--events", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and message in err
    assert _landing_files(empty_env / "data") == before


@pytest.mark.parametrize(
    "content, message",
    [
        (b"PAR1 this is not parquet", "cannot read as parquet"),
        (None, "missing required column(s) event_type"),
    ],
)
def test_unreadable_or_incomplete_parquet_fails_naming_the_file_and_keeps_what_was_landed(
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


def test_an_inbox_link_a_fifo_or_an_oversized_file_is_refused_and_lands_nothing(empty_env, tmp_path, monkeypatch):
    """The inbox holds the shop's own files: a link could point anywhere, a FIFO would block the read forever,
    and a file is read whole into memory (SHOP_MAX_FILE_MB)."""
    import os

    inbox = empty_env / "data" / "inbox" / "events"
    inbox.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text(GOOD_CSV)
    (inbox / f"events_{DAY}.csv").symlink_to(elsewhere)
    with pytest.raises(LandingError, match="a symbolic link in the inbox; copy the export itself"):
        land_day(DAY)
    (inbox / f"events_{DAY}.csv").unlink()
    os.mkfifo(inbox / f"events_{DAY}.csv")
    with pytest.raises(LandingError, match="not a regular file"):
        land_day(DAY)
    (inbox / f"events_{DAY}.csv").unlink()
    (inbox / f"events_{DAY}.csv").write_text(GOOD_CSV + "2026-03-02T11:00:00Z,view,1,10,home,20.0,s1\n" * 30_000)
    monkeypatch.setenv("SHOP_MAX_FILE_MB", "1")
    with pytest.raises(LandingError, match=r"1 MB, over SHOP_MAX_FILE_MB=1; it is read whole"):
        land_day(DAY)
    assert _landing_files(empty_env / "data") == {}
    monkeypatch.setenv("SHOP_MAX_FILE_MB", "2")
    assert land_day(DAY)["events"] == 30_003


def test_a_new_inbox_snapshot_that_still_says_yes_never_grants_back_an_opt_out(built_shop, shop_copy, tmp_path):
    """The shop's users snapshot sits in the inbox; merging it again every day would undo an opt-out landed
    with `ml ingest` since. Landed once per change of the file."""
    shop = shop_copy(built_shop)
    users = pd.read_parquet(shop.data / "landing" / "users" / "users.parquet")
    consenting = int(users.loc[users["marketing_consent"].astype(bool), "user_id"].iloc[0])
    opt_out = tmp_path / "opt_out.csv"
    # The support team's opt-out file, no time column: it dates from its landing.
    row = users[users["user_id"] == consenting].drop(columns="consent_updated_at").assign(marketing_consent=False)
    row.to_csv(opt_out, index=False)
    ingest(users=str(opt_out))
    first, second = shop.remaining_days[:2]
    assert land_day(first)["users"] == 0  # the snapshot `ml history` landed, unchanged since
    landed = pd.read_parquet(shop.data / "landing" / "users" / "users.parquet").set_index("user_id")
    assert not landed.loc[consenting, "marketing_consent"]
    # A new snapshot from the shop (a changed file) is landed: it withdraws another user's consent, and it
    # still says yes for this one, as the shop's record always did: that is no new consent.
    snapshot = shop.data / "inbox" / "users.parquet"
    sent = pd.read_parquet(snapshot)
    other = int(sent.loc[sent["marketing_consent"].astype(bool) & (sent["user_id"] != consenting), "user_id"].iloc[0])
    sent.loc[sent["user_id"] == other, "marketing_consent"] = False
    sent.to_parquet(snapshot, index=False)
    assert land_day(second)["users"] > 0
    landed = pd.read_parquet(shop.data / "landing" / "users" / "users.parquet").set_index("user_id")
    assert not landed.loc[consenting, "marketing_consent"], landed.loc[consenting]
    assert not landed.loc[other, "marketing_consent"], landed.loc[other]
    assert len(landed) == len(users)  # the merge kept every user
    # Only a consent change newer than the opt-out grants it again.
    opted_in = row.assign(marketing_consent=True, consent_updated_at="2099-01-01T00:00:00")
    opted_in.to_csv(opt_out, index=False)
    ingest(users=str(opt_out))
    landed = pd.read_parquet(shop.data / "landing" / "users" / "users.parquet").set_index("user_id")
    assert landed.loc[consenting, "marketing_consent"]
    assert landed.loc[consenting, "consent_updated_at"] == pd.Timestamp("2099-01-01")
    # An unreadable time is refused like any other column, and changes nothing.
    opted_in.assign(marketing_consent=False, consent_updated_at="last tuesday").to_csv(opt_out, index=False)
    with pytest.raises(LandingError, match="column consent_updated_at has 1 unreadable value"):
        ingest(users=str(opt_out))
    assert pd.read_parquet(shop.data / "landing" / "users" / "users.parquet").equals(landed.reset_index())


def test_a_snapshot_grants_consent_only_where_the_shop_changed_it_and_an_opt_out_always_applies():
    """Four users landed before; the shop's next snapshot (no time column) says yes to all and adds a fifth."""
    from datetime import date as day_type

    from ml.ingest.tables import _settle_consent

    stamp = pd.Timestamp("2026-06-02")
    landed = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            # 1: opted out with `ml ingest` (the shop still said yes); 2: the shop said no, now says yes;
            # 3: landed before snapshots were remembered; 4: consenting, and the shop now withdraws it.
            "marketing_consent": [False, False, False, True],
            "consent_updated_at": pd.to_datetime(["2026-06-01 10:00", "2026-05-20 00:00", None, "2026-05-01 00:00"]),
            "snapshot_consent": pd.array([True, False, pd.NA, True], dtype="boolean"),
        }
    )
    sent = pd.DataFrame({"user_id": [1, 2, 3, 4, 5], "marketing_consent": [True, True, True, False, True]})
    out = _settle_consent(
        sent, landed, pd.Series(pd.NaT, index=sent.index, dtype="datetime64[us]"), day_type(2026, 6, 1)
    )
    settled = out.set_index("user_id")
    assert settled["marketing_consent"].to_dict() == {1: False, 2: True, 3: False, 4: False, 5: True}
    assert settled.loc[2, "consent_updated_at"] == stamp and settled.loc[4, "consent_updated_at"] == stamp
    assert settled.loc[1, "consent_updated_at"] == pd.Timestamp("2026-06-01 10:00")  # the opt-out stands
    assert settled["snapshot_consent"].tolist() == [True, True, True, False, True]  # what the shop said
    # The same file from `ml ingest` (a deliberate correction): every row applies, as of now.
    corrected = _settle_consent(sent, landed, pd.Series(pd.NaT, index=sent.index, dtype="datetime64[us]"), None)
    assert corrected["marketing_consent"].tolist() == [True, True, True, False, True]
    assert corrected["snapshot_consent"].tolist()[:4] == [True, False, pd.NA, True]
