"""One writer at a time: two ingests side by side land every row of both; a writer held up says by whom."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ml.errors import ConfigError
from ml.writer_lock import lock_path, writer_lock

ROOT = Path(__file__).resolve().parents[2]


def purchase_log(path: Path, orders: int, first_order: int) -> Path:
    """A purchase log of one day: `orders` orders of one line each, ids from `first_order`."""
    ids = range(first_order, first_order + orders)
    pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in ids],
            "event_at": "2026-03-02T12:00:00Z",
            "event_type": "purchase",
            "user_id": [i % 977 + 1 for i in ids],
            "product_id": [i % 50 + 1 for i in ids],
            "category": "home",
            "price": 19.5,
            "session_id": [f"s{i}" for i in ids],
        }
    ).to_csv(path, index=False)
    return path


def ingest_process(events: Path, data_dir: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ml", "ingest", "--events", str(events)],
        cwd=ROOT,
        env={**os.environ, "SHOP_DATA_DIR": str(data_dir), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def landed_orders(data_dir: Path) -> int:
    files = list((data_dir / "landing" / "events").glob("event_date=2026-03-02/*.parquet"))
    return len(pd.concat([pd.read_parquet(f) for f in files])) if files else 0


def test_two_ingests_of_one_day_side_by_side_land_every_row_of_both(empty_env, tmp_path):
    """Into a day that already holds 150,000 events: each reads, merges and replaces the day's partition."""
    from ml.ingest.landing import ingest

    ingest(events=str(purchase_log(tmp_path / "landed.csv", 150_000, 0)))
    first = purchase_log(tmp_path / "a.csv", 20_000, 200_000)
    second = purchase_log(tmp_path / "b.csv", 20_000, 300_000)
    runs = [ingest_process(path, empty_env / "data") for path in (first, second)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all('"events_added": 20000' in out for out, _ in outputs)
    assert landed_orders(empty_env / "data") == 190_000


def test_an_ingest_waits_for_the_holder_and_then_lands_on_top_of_its_rows(empty_env, tmp_path):
    """While another writer holds the lock the ingest waits, saying who holds it; then it merges, losing nothing."""
    mine = purchase_log(tmp_path / "mine.csv", 500, 0)
    theirs = purchase_log(tmp_path / "theirs.csv", 700, 10_000)
    with writer_lock("a test's ingest"):
        waiting = ingest_process(theirs, empty_env / "data")
        time.sleep(4)
        assert waiting.poll() is None and landed_orders(empty_env / "data") == 0
        from ml.ingest.landing import ingest

        assert ingest(events=str(mine))["events_added"] == 500
    _, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0 and "waits for the writer lock" in err and "a test's ingest" in err
    assert landed_orders(empty_env / "data") == 1_200


def test_a_writer_held_up_past_the_timeout_fails_naming_the_holder_and_writes_nothing(empty_env, tmp_path):
    events = purchase_log(tmp_path / "late.csv", 100, 0)
    with writer_lock("ml history (landing)"):
        run = ingest_process(events, empty_env / "data", SHOP_WRITER_LOCK_TIMEOUT="1")
        _, err = run.communicate(timeout=120)
        assert run.returncode != 0 and "Traceback" not in err
        message = err.strip().splitlines()[-1]
        assert "ml ingest: another writer has held" in message and "ml history (landing)" in message
        assert f"pid {os.getpid()}" in message and "Nothing was written" in message
    assert landed_orders(empty_env / "data") == 0


def test_the_lock_is_re_entrant_and_released_by_a_killed_holder(empty_env):
    with writer_lock("outer"), writer_lock("inner"):
        assert "outer" in lock_path().read_text()
    holder = subprocess.Popen(
        [sys.executable, "-c", "from ml.writer_lock import writer_lock\nwith writer_lock('doomed'):\n input()"],
        cwd=ROOT,
        env={**os.environ, "SHOP_DATA_DIR": str(empty_env / "data")},
        stdin=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while "doomed" not in lock_path().read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    holder.kill()  # SIGKILL: the kernel releases the flock with the process
    holder.wait()
    with writer_lock("after the crash"):
        assert "after the crash" in lock_path().read_text()


def test_a_bad_timeout_setting_is_a_clear_error(empty_env, monkeypatch):
    monkeypatch.setenv("SHOP_WRITER_LOCK_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="SHOP_WRITER_LOCK_TIMEOUT must be a number, got 'soon'"):
        with writer_lock("x"):
            pass


def test_the_holder_sweeps_what_a_killed_landing_left_staged(empty_env):
    """A landing killed between writing its staged file and the rename leaves `.<name>.<id>.tmp` behind."""
    partition = empty_env / "data" / "landing" / "events" / "event_date=2026-03-02"
    partition.mkdir(parents=True)
    kept = partition / "part-0.parquet"
    kept.write_bytes(b"landed")
    (partition / ".part-0.parquet.0123abcd.tmp").write_bytes(b"half written")
    with writer_lock("land_day"):
        assert sorted(p.name for p in partition.iterdir()) == ["part-0.parquet"]
    assert kept.read_bytes() == b"landed"


def test_a_durable_write_flushes_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """After a power loss the folder holds the old file or the whole new one: bytes first, then the entry."""
    from ml.storage import write_text_atomic

    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))) or real_fsync(fd)
    )
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append(("replace", str(b))) or real_replace(a, b))
    target = tmp_path / "pins" / "day.json"
    write_text_atomic("{}", target)
    assert [c[0] for c in calls] == ["fsync", "replace", "fsync"]
    assert calls[0][1].endswith(".tmp") and calls[1][1] == str(target) and calls[2][1] == str(target.parent)
    assert target.read_text() == "{}"
