"""Crash anywhere, rerun, same rows: SIGKILL `ml ingest` (10 points), `ml publish` (8), `ml history` (3), a day's
`ml land-day` (4) and its dbt feature build (2), `ml score` (3) and the targeting build (4) at seeded random
points, rerun the step, and compare with an uninterrupted run; the analyst snapshot stays readable after every kill.

`make test-faults` (CI runs it after `make test`): each kill point costs a partial run and a full rerun.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.warehouse.publish import PUBLISHED
from tests.checksums import query, table_checksums
from tests.conftest import copy_shop
from tests.ml.test_writer_lock import purchase_log

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]
SEED = 20261205
MARTS = ["int_events_checked", "int_user_days_aggregated", "user_features", "training_labels", "campaign_outcomes"]


def step(args: list[str], data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "SHOP_DATA_DIR": str(data_dir), "SHOP_MLFLOW_DIR": str(data_dir.parent / "mlflow")}
    return subprocess.Popen(
        [sys.executable, "-m", "ml", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def killed_after(args: list[str], data_dir: Path, seconds: float) -> bool:
    """Run a step and SIGKILL it after `seconds`; False if it had already finished (the point came too late)."""
    process = step(args, data_dir)
    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def run(args: list[str], data_dir: Path) -> float:
    started = time.monotonic()
    process = step(args, data_dir)
    _, err = process.communicate(timeout=1800)
    assert process.returncode == 0, err.decode()[-2000:]
    return time.monotonic() - started


def landed_rows(data_dir: Path) -> pd.DataFrame:
    """Every landed event, in a fixed order (file layout aside: the content is what must match)."""
    files = sorted((data_dir / "landing" / "events").glob("event_date=*/*.parquet"))
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return frame.sort_values("event_id").reset_index(drop=True)


def test_ml_ingest_killed_anywhere_then_rerun_lands_the_same_rows(tmp_path):
    rng = random.Random(SEED)
    base = tmp_path / "base" / "data"
    run(["ingest", "--events", str(purchase_log(tmp_path / "landed.csv", 150_000, 0))], base)
    more = purchase_log(tmp_path / "more.csv", 60_000, 500_000)
    reference = tmp_path / "reference" / "data"
    shutil.copytree(base, reference)
    duration = run(["ingest", "--events", str(more)], reference)
    expected = landed_rows(reference)
    killed = 0
    for point in range(10):
        data = tmp_path / f"kill_{point}" / "data"
        shutil.copytree(base, data)
        killed += killed_after(["ingest", "--events", str(more)], data, rng.uniform(0.3, duration))
        run(["ingest", "--events", str(more)], data)
        pd.testing.assert_frame_equal(landed_rows(data), expected)
        assert not list((data / "landing").rglob(".*.tmp"))  # the rerun swept what the kill left staged
        shutil.rmtree(data.parent)
    assert killed >= 7  # most points fell inside the run


def test_ml_publish_killed_anywhere_leaves_a_readable_snapshot_and_the_rerun_matches(built_shop, tmp_path):
    rng = random.Random(SEED + 1)
    tables = [t for t in PUBLISHED if t in MARTS or t in ("landing_daily_summary", "events_quarantine")]
    shop = copy_shop(built_shop, tmp_path / "timing")
    duration = run(["publish"], shop.data)
    shutil.rmtree(shop.root)
    killed = 0
    for point in range(8):
        shop = copy_shop(built_shop, tmp_path / f"kill_{point}")
        snapshot = shop.data / "analyst" / "warehouse_snapshot.duckdb"
        if point % 2:  # half the points replace a published snapshot: the old one must stay readable
            run(["publish"], shop.data)
            with duckdb.connect(str(shop.warehouse)) as con:
                con.execute("delete from user_features where as_of_date = (select max(as_of_date) from user_features)")
        killed += killed_after(["publish"], shop.data, rng.uniform(0.5, duration))
        if snapshot.exists():
            with duckdb.connect(str(snapshot), read_only=True) as con:
                assert con.execute("select count(*) from user_features").fetchone()[0] > 0
        run(["publish"], shop.data)
        built = {row[0] for row in query(shop.warehouse, "select table_name from duckdb_tables()")}
        present = [t for t in tables if t in built]
        assert table_checksums(snapshot, present) == table_checksums(shop.warehouse, present)
        shutil.rmtree(shop.root)
    assert killed >= 5


def test_ml_history_killed_anywhere_then_rerun_builds_the_same_marts(built_shop, tmp_path):
    """The session shop was built uninterrupted (`build_history(keep_last=3)`): the reference."""
    rng = random.Random(SEED + 2)
    expected = table_checksums(built_shop.warehouse, MARTS)
    shop = copy_shop(built_shop, tmp_path / "timing")
    duration = run(["history", "--keep-last", "3"], shop.data)
    assert table_checksums(shop.warehouse, MARTS) == expected
    shutil.rmtree(shop.root)
    for point in range(3):
        shop = copy_shop(built_shop, tmp_path / f"kill_{point}")
        assert killed_after(["history", "--keep-last", "3"], shop.data, rng.uniform(2.0, 0.9 * duration))
        run(["history", "--keep-last", "3"], shop.data)
        assert table_checksums(shop.warehouse, MARTS) == expected
        shutil.rmtree(shop.root)


def test_a_day_killed_while_landing_or_building_then_rerun_equals_the_uninterrupted_day(built_shop, tmp_path):
    """The DAG's first two steps for the next day: land_day (4 points) and the dbt feature build (2 points)."""
    rng = random.Random(SEED + 3)
    day = built_shop.remaining_days[0]
    as_of = str(day + timedelta(days=1))
    land = ["land-day", str(day)]
    build = ["build", "--as-of-start", as_of]
    shop = copy_shop(built_shop, tmp_path / "reference")
    land_seconds = run(land, shop.data)
    build_seconds = run(build, shop.data)
    expected_landing, expected = landed_rows(shop.data), table_checksums(shop.warehouse, MARTS)
    shutil.rmtree(shop.root)
    for point, (killed_step, seconds) in enumerate(
        [(land, rng.uniform(0.3, land_seconds)) for _ in range(4)]
        + [(build, rng.uniform(2.0, 0.9 * build_seconds)) for _ in range(2)]
    ):
        shop = copy_shop(built_shop, tmp_path / f"kill_{point}")
        if killed_step is build:
            run(land, shop.data)
        killed_after(killed_step, shop.data, seconds)
        run(land, shop.data)  # the DAG's retry of the day: land again, then build
        run(build, shop.data)
        pd.testing.assert_frame_equal(landed_rows(shop.data), expected_landing)
        assert table_checksums(shop.warehouse, MARTS) == expected
        shutil.rmtree(shop.root)


def planned_files(data_dir: Path) -> dict[str, pd.DataFrame]:
    """The day's scores and send list as written (the parquet partitions the marts read)."""
    return {
        kind: pd.read_parquet(next((data_dir / kind).glob("as_of_date=*/part-0.parquet")))
        for kind in ("scores", "targets")
    }


def test_scoring_and_targeting_killed_anywhere_then_rerun_give_the_same_scores_and_send_list(trained_shop, tmp_path):
    """`ml score` (3 points) and `ml build --targeting` (segments, the send list, the targeting marts: 4 points)."""
    rng = random.Random(SEED + 4)
    as_of = str(query(trained_shop.warehouse, "select max(as_of_date) from user_features")[0][0])
    score, target = ["score", as_of], ["build", "--targeting", "--as-of-start", as_of]
    marts = ["user_segments", "coupon_targets"]
    shop = copy_shop(trained_shop, tmp_path / "reference")
    score_seconds = run(score, shop.data)
    target_seconds = run(target, shop.data)
    expected_files, expected = planned_files(shop.data), table_checksums(shop.warehouse, marts)
    assert len(expected_files["targets"]) > 0
    shutil.rmtree(shop.root)
    killed = 0
    for point, (killed_step, seconds) in enumerate(
        [(score, rng.uniform(0.5, score_seconds)) for _ in range(3)]
        + [(target, rng.uniform(1.0, 0.95 * target_seconds)) for _ in range(4)]
    ):
        shop = copy_shop(trained_shop, tmp_path / f"kill_{point}")
        if killed_step is target:
            run(score, shop.data)
        killed += killed_after(killed_step, shop.data, seconds)
        for rerun in (score, target) if killed_step is score else (target,):
            run(rerun, shop.data)
        got = planned_files(shop.data)
        for kind, frame in expected_files.items():
            pd.testing.assert_frame_equal(got[kind], frame, obj=kind)
        assert table_checksums(shop.warehouse, marts) == expected
        shutil.rmtree(shop.root)
    assert killed >= 5
