"""The point-in-time check: features as of T must be what they would have been with only events before T.

It rebuilds one as-of date in a scratch warehouse from a landing area that holds only the event (and
campaign) partitions before T, then compares every column of `user_features` for T with the real
warehouse's rows, which were built while later events were present. A difference is a leak (or a
feature that depends on something other than the past), named by column. `python -m ml check-leakage`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

from ml.config import settings
from ml.errors import UserFacingError
from ml.ingest.plans import named_day
from ml.warehouse.builds import as_of_vars
from ml.warehouse.dbt_runner import run_dbt
from ml.warehouse.history import landed_days
from ml.warehouse.read import connect_read_only


class LeakageError(UserFacingError):
    """Features as of a date changed when later events were present."""


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link a folder's files (copy where links are impossible): the scratch area costs no space."""
    for path in source.rglob("*.parquet"):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)


def past_only_landing(landing_dir: Path, scratch: Path, as_of: date) -> Path:
    """A landing area with the users and products tables and only the partitions dated before `as_of`."""
    target = scratch / "landing"
    for kind in ("users", "products"):
        if (landing_dir / kind).exists():
            _link_tree(landing_dir / kind, target / kind)
    for kind in ("events", "coupon_sends"):
        for partition in sorted((landing_dir / kind).glob("*=*")):
            day = named_day(partition)
            if day and day < as_of:
                _link_tree(partition, target / kind / partition.name)
    return target


def _default_as_of(built: list[date], newest_event: date) -> date:
    """The middle built as-of date: old enough that weeks of later events exist."""
    candidates = [d for d in built if d <= newest_event]
    if not candidates:
        raise UserFacingError("no as-of date in user_features has events on or after it: nothing could leak yet")
    return candidates[len(candidates) // 2]


def check_point_in_time(as_of: date | None = None) -> dict[str, object]:
    """Rebuild features as of `as_of` from the past alone and compare; LeakageError names leaking columns."""
    cfg = settings()
    days = landed_days()
    with connect_read_only() as con:
        built = [r[0] for r in con.execute("select distinct as_of_date from user_features order by 1").fetchall()]
    if not built or not days:
        raise UserFacingError("no features built yet: run `python -m ml history` first")
    as_of = as_of or _default_as_of(built, days[-1])
    if as_of not in built:
        raise UserFacingError(f"--as-of {as_of} is not built in user_features ({built[0]}..{built[-1]})")
    later = [d for d in days if d >= as_of]
    scratch = Path(tempfile.mkdtemp(prefix=".leakage-check-", dir=cfg.data_dir))
    try:
        scratch_cfg = dataclasses.replace(
            cfg,
            landing_dir=past_only_landing(cfg.landing_dir, scratch, as_of),
            warehouse_path=scratch / "warehouse.duckdb",
        )
        # dbt run, not build: the data tests guard the real build; here only the rows matter.
        run_dbt(["run", "--select", "+user_features"], as_of_vars(as_of, as_of, scratch_cfg), scratch_cfg)
        differences = compare_features(cfg.warehouse_path, scratch_cfg.warehouse_path, as_of)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"as_of_date": str(as_of), "later_event_days": len(later), **differences}
    if differences["rows_differing"]:
        columns = ", ".join(f"{c} ({n} users)" for c, n in differences["columns_differing"].items())
        raise LeakageError(
            f"features as of {as_of} change when the {len(later)} later event days are present: {columns}. "
            "A feature reads events on or after its as-of date (see the point_in_time rule in the dbt docs), or "
            f"events dated before {as_of} landed late, after it was built: rebuild it "
            f"(python -m ml build --as-of-start {as_of}) and check again."
        )
    return result


def compare_features(warehouse: Path, past_only: Path, as_of: date) -> dict[str, object]:
    """Rows and, per column, users whose value differs between the two builds of `as_of`."""
    import duckdb

    with duckdb.connect() as con:
        con.execute(f"attach '{warehouse}' as real_build (read_only)")
        con.execute(f"attach '{past_only}' as past_build (read_only)")
        columns = [r[0] for r in con.execute("describe real_build.user_features").fetchall()]
        keys = ("user_id", "as_of_date")
        compared = [c for c in columns if c not in keys]
        base = f"""
            from (select * from real_build.user_features where as_of_date = date '{as_of}') as r
            full join (select * from past_build.user_features where as_of_date = date '{as_of}') as p
            using (user_id)
        """
        counts = con.execute(
            "select count(*), count(*) filter (where r.user_id is null or p.user_id is null), "
            + ", ".join(f"count(*) filter (where r.{c} is distinct from p.{c})" for c in compared)
            + base
        ).fetchone()
        differing_rows = con.execute(
            "select count(*) "
            + base
            + " where r.user_id is null or p.user_id is null or "
            + " or ".join(f"r.{c} is distinct from p.{c}" for c in compared)
        ).fetchone()[0]
    rows, unmatched, per_column = counts[0], counts[1], counts[2:]
    columns_differing = {c: int(n) for c, n in zip(compared, per_column, strict=True) if n}
    if unmatched:
        columns_differing["(user present in only one build)"] = int(unmatched)
    return {"rows": int(rows), "rows_differing": int(differing_rows), "columns_differing": columns_differing}
