"""`make bench` options a user can get wrong stop before the bench deletes anything."""

from __future__ import annotations

import pytest

from ml.bench.__main__ import own_paths, reuse_built_shop, steps_to_skip
from ml.bench.measure import task_seconds


def test_reuse_without_a_built_shop_says_what_is_missing_and_keeps_the_folder(tmp_path, monkeypatch):
    (tmp_path / "inbox").mkdir()
    kept = tmp_path / "inbox" / "events.csv"
    kept.write_text("a shop's file\n")
    monkeypatch.setenv("SHOP_BENCH_REUSE", "1")
    with pytest.raises(SystemExit, match="no built and trained shop .*run `make bench`"):
        reuse_built_shop(tmp_path, 20_000, 180)
    assert kept.read_text() == "a shop's file\n"
    monkeypatch.delenv("SHOP_BENCH_REUSE")
    assert reuse_built_shop(tmp_path, 20_000, 180) is False


def test_reuse_of_a_shop_of_another_size_names_both_sizes(tmp_path, monkeypatch):
    from ml.sim.shop import ShopSpec

    for needed in ("mlflow", "inbox"):
        (tmp_path / needed).mkdir()
    (tmp_path / "warehouse.duckdb").write_bytes(b"")
    (tmp_path / "inbox" / "shop_spec.json").write_text(ShopSpec(users=1_000_000, days=365).to_json())
    monkeypatch.setenv("SHOP_BENCH_REUSE", "1")
    with pytest.raises(SystemExit, match="has 1000000 users x 365 days, not 200000 x 365"):
        reuse_built_shop(tmp_path, 200_000, 365)
    assert reuse_built_shop(tmp_path, 1_000_000, 365) is True


def test_an_unknown_skipped_step_is_named(monkeypatch):
    monkeypatch.setenv("SHOP_BENCH_SKIP", "day_60,day_90")
    with pytest.raises(SystemExit, match="unknown step\\(s\\) day_90"):
        steps_to_skip()


def test_task_seconds_reads_where_an_airflow_day_spent_its_time():
    log = "\n".join(
        [
            "2026-12-03T13:40:33.000000Z [info     ] DAG bundles loaded",
            "2026-12-03T13:40:33.500000Z [info     ] [DAG TEST] running task <TaskInstance: shop_daily.land_day "
            "manual__2026-12-03T13:40:33+00:00 [TaskInstanceState.SCHEDULED] ti_id=1>",
            "reading event files: 1/1 (100%) 0.1s",
            "2026-12-03T13:40:58.000000Z [info     ] [DAG TEST] running task <TaskInstance: "
            "shop_daily.features.user_features_model_build manual__2026-12-03T13:40:33+00:00 [...]>",
            "12:41:01  Done. PASS=3",
            "2026-12-03T13:41:09.250000Z [info     ] DagRun Finished",
        ]
    )
    assert task_seconds(log) == {"land_day": 24.5, "features.user_features_model_build": 11.25}


def test_the_bench_keeps_every_path_under_its_own_folder_whatever_the_environment_sets(tmp_path, monkeypatch):
    """A deployment's paths (.env.example) would point the bench's deletes and promotions at its real files."""
    from ml.config import settings

    production = tmp_path / "production"
    monkeypatch.setenv("SHOP_LANDING_DIR", str(production / "landing"))
    monkeypatch.setenv("SHOP_WAREHOUSE_PATH", str(production / "warehouse.duckdb"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow@db/mlflow")
    root = tmp_path / "bench"
    assert own_paths(root) == ["SHOP_LANDING_DIR", "SHOP_WAREHOUSE_PATH", "MLFLOW_TRACKING_URI"]
    cfg = settings()
    written = [cfg.landing_dir, cfg.warehouse_path, cfg.snapshot_path, cfg.audit_dir, cfg.mlflow_artifact_root]
    assert all(path.is_relative_to(root) for path in written)
    assert cfg.mlflow_tracking_uri == f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
