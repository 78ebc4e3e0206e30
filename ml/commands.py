"""What each `python -m ml` command does: one function per command, called with its parsed arguments."""

from __future__ import annotations

import argparse
import json
import sys

from ml.errors import ConfigError


def cmd_simulate(args: argparse.Namespace) -> None:
    from ml.sim.run import simulate
    from ml.sim.shop import ShopSpec

    try:
        spec = ShopSpec(
            seed=args.seed,
            users=args.users,
            days=args.days,
            start=args.start,
            coupon_effects=not args.no_coupon_effects,
            shift=args.shift,
            shift_from=args.shift_from,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
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


def cmd_forget(args: argparse.Namespace) -> None:
    from ml.forget import forget, read_user_ids

    print(json.dumps(forget(read_user_ids(args.user_id, args.file))))


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


def cmd_monitor(args: argparse.Namespace) -> None:
    from ml.pipeline import monitor

    print(json.dumps(monitor(args.as_of)))


def cmd_forecast(args: argparse.Namespace) -> None:
    from ml.forecasts.segments import forecast_day

    print(json.dumps(forecast_day(args.as_of)))


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


def cmd_tune(args: argparse.Namespace) -> None:
    from ml.propensity.tuning import tune

    for line in tune(args.as_of, args.trials, args.gap_days):
        print(json.dumps(line))


def cmd_backtest(args: argparse.Namespace) -> None:
    from ml.propensity.backtest import backtest
    from ml.propensity.feature_trial import feature_trial

    for line in (feature_trial if args.feature_groups else backtest)(args.as_of):
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


def cmd_check_secrets(args: argparse.Namespace) -> None:
    from ml.deploy.secret_check import check_secrets

    check_secrets(args.names)


def cmd_accounts(args: argparse.Namespace) -> None:
    if args.service == "mlflow":
        from ml.deploy.mlflow_accounts import provision_mlflow_accounts as provision
    else:
        from ml.deploy.airflow_accounts import provision_airflow_accounts as provision
    print(json.dumps(provision()))
