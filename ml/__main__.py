"""Command line: `python -m ml COMMAND`. Every pipeline step the DAG runs can be run from here."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from datetime import date


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


def cmd_simulate(args: argparse.Namespace) -> None:
    from ml.sim.run import simulate
    from ml.sim.shop import ShopSpec

    spec = ShopSpec(
        seed=args.seed, users=args.users, days=args.days, start=args.start, coupon_effects=not args.no_coupon_effects
    )
    print(json.dumps(simulate(spec)))


def cmd_ingest(args: argparse.Namespace) -> None:
    from ml.ingest.landing import ingest

    print(json.dumps(ingest(args.events, args.users, args.products, args.coupon_sends, replace=args.replace)))


def cmd_land_day(args: argparse.Namespace) -> None:
    from ml.pipeline import land

    print(json.dumps(land(args.date, source="simulate" if args.simulate_missing else "inbox")))


def cmd_build(args: argparse.Namespace) -> None:
    from ml.targeting.build import build_targeting
    from ml.warehouse.builds import build_features

    if args.targeting:
        build_targeting(args.as_of_start, reprocess_from=args.reprocess_from)
    else:
        build_features(args.as_of_start, args.as_of_end, reprocess_from=args.reprocess_from)


def cmd_history(args: argparse.Namespace) -> None:
    from ml.warehouse.history import build_history

    # stdout carries only the remaining days, one per line, for `make run` to loop over.
    print("\n".join(str(d) for d in build_history(args.keep_last)))


def cmd_bootstrap(args: argparse.Namespace) -> None:
    from ml.warehouse.history import bootstrap

    print(json.dumps(bootstrap(args.keep_last, users=args.users, days=args.days)))


def cmd_publish(args: argparse.Namespace) -> None:
    from ml.warehouse.publish import publish_snapshot

    print(publish_snapshot(since=args.since))


def cmd_summary(args: argparse.Namespace) -> None:
    from ml.summary import print_summary

    print_summary()


def cmd_train(args: argparse.Namespace) -> None:
    from ml.pipeline import train_uplift_if_possible
    from ml.propensity.train import train_all

    tasks = args.task or ["purchase_30d", "churn_30d", "coupon_uplift"]
    behaviour = [t for t in tasks if t != "coupon_uplift"]
    if behaviour:
        for line in train_all(tasks=behaviour, as_of=args.as_of):
            print(json.dumps(line))
    if "coupon_uplift" in tasks:
        print(json.dumps(train_uplift_if_possible()))


def cmd_target(args: argparse.Namespace) -> None:
    from ml.targeting.plan import target_day

    print(json.dumps(target_day(args.as_of)))


def cmd_score(args: argparse.Namespace) -> None:
    from ml.propensity.score import score_day

    print(json.dumps(score_day(args.as_of)))


def cmd_unpin(args: argparse.Namespace) -> None:
    from ml.day_pins import pin_path, unpin

    print(json.dumps({"as_of_date": str(args.as_of), "unpinned": unpin(args.as_of), "path": str(pin_path(args.as_of))}))


def cmd_loop(args: argparse.Namespace) -> None:
    from ml.sim.loop import realised_vs_truth, results_table, run_loop

    for line in run_loop(args.days):
        print(json.dumps(line))
    print("\ncoupon_results, matured 7-day windows, pooled per policy arm and coupon:", file=sys.stderr)
    print(results_table().to_string(index=False), file=sys.stderr)
    for line in realised_vs_truth():
        print(json.dumps(line))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ml.sim.policy_truth import evaluate_policies
    from ml.sim.truth_check import evaluate_against_truth

    if not args.against_truth:
        raise SystemExit("evaluate: only --against-truth is implemented; model metrics are in MLflow")
    for line in evaluate_against_truth(args.as_of):
        print(json.dumps(line))
    for line in evaluate_policies([args.as_of] if args.as_of else None):
        print(json.dumps(line))


def cmd_backtest(args: argparse.Namespace) -> None:
    from ml.propensity.backtest import backtest

    for line in backtest(args.as_of):
        print(json.dumps(line))


def cmd_check_leakage(args: argparse.Namespace) -> None:
    from ml.warehouse.leakage import check_point_in_time

    print(json.dumps(check_point_in_time(args.as_of)))


def cmd_models(args: argparse.Namespace) -> None:
    from ml.registry import aliases as registry

    if args.action == "list":
        for row in registry.list_versions():
            print(json.dumps(row))
    elif args.action == "promote":
        print(json.dumps(registry.promote(args.name, args.version, reason=args.reason)))
    elif args.action == "rollback":
        print(json.dumps(registry.rollback(args.name, reason=args.reason)))


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
    p.set_defaults(func=cmd_simulate)

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
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("land-day", help="land one day from the inbox (what the DAG's first task does)")
    p.add_argument("date", type=_date)
    p.add_argument("--simulate-missing", action="store_true", help="simulate the day if the inbox lacks it")
    p.set_defaults(func=cmd_land_day)

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
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "history", help="land the inbox (but its last N days), build features over every landed day; print the N days"
    )
    p.add_argument("--keep-last", type=int, default=0, help="leave the newest N inbox days for the DAG")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser(
        "bootstrap",
        help="a deployment's first start: build history once (SHOP_SOURCE=simulate: a demo shop ending yesterday)",
    )
    p.add_argument("--keep-last", type=int, default=1, help="leave the newest N inbox days for the scheduler")
    p.add_argument("--users", type=_positive, default=20_000, help="demo shop only")
    p.add_argument("--days", type=_positive, default=180, help="demo shop only")
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser("publish", help="publish the analyst snapshot (atomic replace)")
    p.add_argument(
        "--since",
        type=_date,
        default=None,
        help="the first event day re-processed since the last publish: compare only the days that can change "
        "(default: every day)",
    )
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("summary", help="print rows per mart, quarantine counts, models and targeting")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train XGBoost and logistic models, log to MLflow, register, gate")
    p.add_argument(
        "--task", action="append", choices=["purchase_30d", "churn_30d", "coupon_uplift"], help="default: all three"
    )
    p.add_argument("--as-of", type=_date, help="test on this matured as-of date (default: the newest)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="score users as of a date with the @champion models (a rerun: the pinned ones)")
    p.add_argument("as_of", type=_date, nargs="?", help="default: the newest as-of date in user_features")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "unpin", help="forget the model versions, training decision and policy a day's first run pinned (ml.day_pins)"
    )
    p.add_argument("--as-of", dest="as_of", type=_date, required=True, help="the as-of date (business day + 1)")
    p.set_defaults(func=cmd_unpin)

    p = sub.add_parser(
        "loop", help="run the daily pipeline N more simulated days (the shop delivers the coupons), then the results"
    )
    p.add_argument("--days", type=_positive, default=35)
    p.set_defaults(func=cmd_loop)

    p = sub.add_parser("target", help="plan the day's coupon send list (arms, holdout, budgeted allocation)")
    p.add_argument("as_of", type=_date, nargs="?", help="default: the newest as-of date in user_segments")
    p.set_defaults(func=cmd_target)

    p = sub.add_parser(
        "evaluate", help="compare champion models, and the targeting policies, with the simulator's truth"
    )
    p.add_argument("--against-truth", action="store_true")
    p.add_argument("--as-of", type=_date)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("backtest", help="models vs recency, frequency and BG/NBD on one date's labels (not registered)")
    p.add_argument("--as-of", type=_date, help="test on this date's 30-day labels, train before it (default: newest)")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser(
        "check-leakage", help="rebuild an older as-of date from past events only and compare every feature"
    )
    p.add_argument("--as-of", type=_date, help="the as-of date to check (default: the middle built one)")
    p.set_defaults(func=cmd_check_leakage)

    p = sub.add_parser("models", help="list, promote or roll back registered model versions")
    p.add_argument("action", choices=["list", "promote", "rollback"])
    p.add_argument("name", nargs="?")
    p.add_argument("version", nargs="?")
    p.add_argument("--reason", default="")
    p.set_defaults(func=cmd_models)
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
