"""Command line: `python -m ml COMMAND`. Every pipeline step the DAG runs can be run from here."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from datetime import date
from pathlib import Path

from ml import commands
from ml.config import LABEL_HORIZON_DAYS
from ml.sim.shop import SHIFTS


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a synthetic shop's exports to the inbox and its truth aside")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--users", type=_positive, default=20_000)
    p.add_argument("--days", type=_positive, default=180)
    p.add_argument("--start", type=_date, default=date(2026, 1, 1))
    p.add_argument(
        "--no-coupon-effects",
        action="store_true",
        help="a placebo shop: coupons are sent and redeemed but never change whether anyone buys",
    )
    p.add_argument("--shift", choices=sorted(SHIFTS), help="inject a drift (docs/models.md#monitoring)")
    p.add_argument("--shift-from", type=_date, help="the first day of the shift")
    p.set_defaults(func=commands.cmd_simulate)

    p = sub.add_parser("ingest", help="land your own event files (CSV/Parquet), one partition per day")
    p.add_argument("--events", help="event or purchase log: a file, a folder or a glob (CSV or Parquet)")
    p.add_argument("--users", help="user table (user_id, signup_at, ...)")
    p.add_argument("--products", help="product table (product_id, category, price, ...)")
    p.add_argument("--coupon-sends", help="campaign sends (campaign_id, user_id, sent_at, group_name, ...)")
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace every day (and table) the files cover instead of merging by id",
    )
    p.set_defaults(func=commands.cmd_ingest)

    p = sub.add_parser("land-day", help="land one day from the inbox (what the DAG's first task does)")
    p.add_argument("date", type=_date)
    p.add_argument("--simulate-missing", action="store_true", help="simulate the day if the inbox lacks it")
    p.set_defaults(func=commands.cmd_land_day)

    p = sub.add_parser("build", help="dbt build of the feature marts for as-of dates (or targeting)")
    p.add_argument("--as-of-start", type=_date)
    p.add_argument("--as-of-end", type=_date)
    p.add_argument(
        "--reprocess-from",
        type=_date,
        help="re-process event days from this day on (default: SHOP_LATE_EVENT_DAYS before --as-of-start, or "
        "earlier: the oldest landed change no build has covered yet, e.g. a correction landed with `ml ingest`)",
    )
    p.add_argument("--targeting", action="store_true", help="build the targeting marts for --as-of-start")
    p.set_defaults(func=commands.cmd_build)

    p = sub.add_parser(
        "history", help="land the inbox (but its last N days), build features over every landed day; print the N days"
    )
    p.add_argument("--keep-last", type=int, default=0, help="leave the newest N inbox days for the DAG")
    p.set_defaults(func=commands.cmd_history)

    p = sub.add_parser(
        "bootstrap",
        help="a deployment's first start: build history once (SHOP_SOURCE=simulate: a demo shop ending yesterday)",
    )
    p.add_argument("--keep-last", type=int, default=1, help="leave the newest N inbox days for the scheduler")
    p.add_argument("--users", type=_positive, default=20_000, help="demo shop only")
    p.add_argument("--days", type=_positive, default=180, help="demo shop only")
    p.set_defaults(func=commands.cmd_bootstrap)

    p = sub.add_parser("publish", help="publish the analyst snapshot (atomic replace)")
    p.add_argument(
        "--since",
        type=_date,
        default=None,
        help="the first event day re-processed since the last publish: compare only the days that can change "
        "(default: every day)",
    )
    p.set_defaults(func=commands.cmd_publish)

    p = sub.add_parser("summary", help="print rows per mart, quarantine counts, models and targeting")
    p.set_defaults(func=commands.cmd_summary)

    p = sub.add_parser("train", help="train every model family (SHOP_MODEL_FLAVOURS), log to MLflow, register, gate")
    p.add_argument(
        "--task", action="append", choices=["purchase_30d", "churn_30d", "coupon_uplift"], help="default: all three"
    )
    p.add_argument("--as-of", type=_date, help="test on this matured as-of date (default: the newest)")
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("score", help="score users as of a date with the @champion models (a rerun: the pinned ones)")
    p.add_argument("as_of", type=_date, nargs="?", help="default: the newest as-of date in user_features")
    p.set_defaults(func=commands.cmd_score)

    p = sub.add_parser(
        "monitor",
        help="the champions' realised performance on matured labels and drift as of a date (model_monitoring)",
    )
    p.add_argument("as_of", type=_date, help="the scoring date (scores must exist for it)")
    p.set_defaults(func=commands.cmd_monitor)

    p = sub.add_parser(
        "forecast", help="each lifecycle segment's orders and revenue for the 28 days from a date (segment_forecasts)"
    )
    p.add_argument("as_of", type=_date, help="the as-of date (business day + 1)")
    p.set_defaults(func=commands.cmd_forecast)

    p = sub.add_parser(
        "unpin", help="forget the model versions, training decision and policy a day's first run pinned (ml.day_pins)"
    )
    p.add_argument("--as-of", dest="as_of", type=_date, required=True, help="the as-of date (business day + 1)")
    p.set_defaults(func=commands.cmd_unpin)

    p = sub.add_parser(
        "loop", help="run the daily pipeline N more simulated days (the shop delivers the coupons), then the results"
    )
    p.add_argument("--days", type=_positive, default=35)
    p.set_defaults(func=commands.cmd_loop)

    p = sub.add_parser("target", help="plan the day's coupon send list (arms, holdout, budgeted allocation)")
    p.add_argument("as_of", type=_date, nargs="?", help="default: the newest as-of date in user_segments")
    p.set_defaults(func=commands.cmd_target)

    p = sub.add_parser(
        "evaluate", help="compare champion models, and the targeting policies, with the simulator's truth"
    )
    p.add_argument("--against-truth", action="store_true")
    p.add_argument("--as-of", type=_date)
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser(
        "tune", help="choose each model family's hyperparameters by time-ordered cross-validation (training uses them)"
    )
    p.add_argument("--as-of", type=_date, help="tune on the training snapshots of this date's split (default: newest)")
    p.add_argument("--trials", type=_positive, default=8, help="trials per family, the defaults included (default 8)")
    p.add_argument(
        "--gap-days",
        type=_positive,
        default=LABEL_HORIZON_DAYS,
        help=f"days between a fold's training and validation snapshots (default {LABEL_HORIZON_DAYS}: no overlap)",
    )
    p.set_defaults(func=commands.cmd_tune)

    p = sub.add_parser("backtest", help="models vs recency, frequency and BG/NBD on one date's labels (not registered)")
    p.add_argument("--as-of", type=_date, help="test on this date's 30-day labels, train before it (default: newest)")
    p.add_argument(
        "--feature-groups",
        action="store_true",
        help="instead: refit with each candidate behaviour group (dwell time, time habits, category affinity) added",
    )
    p.set_defaults(func=commands.cmd_backtest)

    p = sub.add_parser(
        "check-leakage", help="rebuild an older as-of date from past events only and compare every feature"
    )
    p.add_argument("--as-of", type=_date, help="the as-of date to check (default: the middle built one)")
    p.set_defaults(func=commands.cmd_check_leakage)

    p = sub.add_parser(
        "forget",
        help="erase customers from every file, table and snapshot the pipeline keeps; nothing lands them again",
    )
    p.add_argument("--user-id", action="append", default=[], metavar="ID", help="a user id (repeatable)")
    p.add_argument("--file", action="append", default=[], type=Path, help="a file of user ids, one per line")
    p.set_defaults(func=commands.cmd_forget)

    p = sub.add_parser(
        "check-secrets", help="refuse a deployment secret that is missing, short or a well-known default, naming it"
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="environment variables holding secrets")
    p.set_defaults(func=commands.cmd_check_secrets)

    p = sub.add_parser("accounts", help="a deployment's MLflow or Airflow accounts: create them or set them back")
    p.add_argument("service", choices=["mlflow", "airflow"])
    p.set_defaults(func=commands.cmd_accounts)

    p = sub.add_parser("models", help="list, promote or roll back registered model versions")
    p.add_argument("action", choices=["list", "promote", "rollback"])
    p.add_argument("name", nargs="?")
    p.add_argument("version", nargs="?")
    p.add_argument("--reason", default="")
    p.set_defaults(func=commands.cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # A stopped command unwinds like Ctrl-C: its dbt child is stopped and its MLflow run ends FAILED.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "models":
        if args.action in ("promote", "rollback") and not args.name:
            parser.error(f"models {args.action} needs a model NAME")
        if args.action == "promote" and not args.version:
            parser.error("models promote needs NAME VERSION")
        if args.action in ("promote", "rollback") and not args.reason.strip():
            parser.error(f"models {args.action} needs --reason TEXT (it goes into the audit table)")
    from ml.errors import UserFacingError

    try:
        args.func(args)
    except UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
