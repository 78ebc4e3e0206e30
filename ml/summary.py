"""The short report `make run` ends with, read from the published analyst snapshot."""

from __future__ import annotations

from ml.config import settings
from ml.warehouse.read import connect_read_only, table_names

MARTS = [
    "user_features",
    "training_labels",
    "events_quarantine",
    "user_segments",
    "coupon_targets",
    "policy_evaluations",
    "model_promotions",
    "model_monitoring",
    "user_score_reasons",
]


def summary_lines() -> list[str]:
    cfg = settings()
    path = cfg.snapshot_path if cfg.snapshot_path.exists() else cfg.warehouse_path
    lines = [f"Warehouse (pipeline writes): {cfg.warehouse_path}", f"Analyst snapshot (read-only): {cfg.snapshot_path}"]
    with connect_read_only(path) as con:
        tables = table_names(con)
        lines.append("\nRows per mart:")
        for mart in MARTS:
            if mart in tables:
                count = con.execute(f"select count(*) from {mart}").fetchone()[0]
                lines.append(f"  {mart:<20} {count:>12,}")
        if "user_features" in tables:
            first, last, dates = con.execute(
                "select min(as_of_date), max(as_of_date), count(distinct as_of_date) from user_features"
            ).fetchone()
            lines.append(f"  user_features covers {dates} as-of dates, {first} .. {last}")
        if "events_quarantine" in tables:
            lines.append("\nQuarantined events by reason:")
            rows = con.execute(
                "select quarantine_reason, count(*) from events_quarantine group by 1 order by 2 desc"
            ).fetchall()
            lines += [f"  {reason:<40} {count:>8,}" for reason, count in rows] or ["  none"]
        if "user_segments" in tables:
            latest = con.execute("select max(as_of_date) from user_segments").fetchone()[0]
            lines.append(f"\nSegments as of {latest}:")
            rows = con.execute(
                "select lifecycle_segment, count(*) from user_segments where as_of_date = ? group by 1 order by 2 desc",
                [latest],
            ).fetchall()
            lines += [f"  {segment:<12} {count:>8,}" for segment, count in rows]
        if "coupon_targets" in tables:
            lines += _targeting_lines(con, cfg)
        if "policy_evaluations" in tables:
            lines += _evaluation_lines(con)
        if "model_monitoring" in tables:
            lines += _monitoring_lines(con)
    lines += _source_lines()
    lines += _champion_lines()
    lines += [
        "\nNext:",
        "  make airflow        # the Airflow UI with the shop_daily DAG (backfill, rerun a day)",
        "  make mlflow         # runs, metrics, plots; move the champion alias",
        "  make dbt-docs       # column docs and lineage",
        "  .venv/bin/python -m ml evaluate --against-truth",
        "  .venv/bin/python -m ml models list",
        f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{cfg.snapshot_path}', read_only=True)"
        ".sql('from coupon_targets limit 5'))\"",
    ]
    return lines


def _monitoring_lines(con) -> list[str]:
    """Each model's newest realised ROC AUC and score PSI, and how many checks of the newest day need a look."""
    lines = ["\nMonitoring (model_monitoring):"]
    rows = con.execute(
        """
        select model_name, model_version, metric, scoring_date, value, reference_value, status
        from model_monitoring
        where metric in ('roc_auc', 'score_psi') and status != 'pending'
        qualify row_number() over (partition by model_name, metric order by scoring_date desc) = 1
        order by model_name, metric
        """
    ).fetchall()
    for name, version, metric, day, value, reference, status in rows:
        versus = f" (test {reference:.3f})" if reference is not None else ""
        lines.append(f"  {name:<20} v{version:<4} {metric:<10} {value:.3f}{versus} on {day}: {status}")
    flagged = con.execute(
        """
        select count(*) filter (where status = 'warn'), count(*) filter (where status = 'alert')
        from model_monitoring where scoring_date = (select max(scoring_date) from model_monitoring)
        """
    ).fetchone()
    lines.append(f"  newest scoring date: {flagged[0]} warnings, {flagged[1]} alerts (an alert retrains)")
    return lines


def _source_lines() -> list[str]:
    """What the shop sent besides events, and what the pipeline cannot do without it."""
    landing = settings().landing_dir
    lines = ["\nWhat the shop sent:"]
    if not list((landing / "users").glob("*.parquet")):
        lines.append("  no user table: users sign up with their first event; no consent on record, so no coupons")
    if not list((landing / "products").glob("*.parquet")):
        lines.append("  no product catalogue: categories come from the events or stay unknown")
    sends = list((landing / "coupon_sends").glob("*/*.parquet"))
    if sends:
        lines.append(f"  randomised campaign sends on {len(sends)} days (treatment and control groups)")
    else:
        lines.append(
            "  no randomised campaigns: coupon effects cannot be estimated (no treatment/control history), so the "
            "coupon features are zero and targeting runs the propensity rules with the catalogue's assumed uplift"
        )
    return lines


def _targeting_lines(con, cfg) -> list[str]:
    """The send lists per day and arm, which policy leads, and the realised results so far."""
    from ml.targeting.policy_gate import champion_policy

    lines = [f"\nCoupon targeting (leading policy: {champion_policy()}; sent / holdout, planned spend of the budget):"]
    rows = con.execute(
        """select as_of_date, policy, count(*) filter (where not is_holdout), count(*) filter (where is_holdout),
                  sum(expected_cost) filter (where not is_holdout), sum(expected_margin) filter (where not is_holdout)
           from coupon_targets group by 1, 2 order by 1, 2"""
    ).fetchall()
    for as_of, policy, sent, held, cost, margin in rows:
        lines.append(
            f"  {as_of} {policy:<10} {sent:>6,} sent {held:>5,} holdout  spend {cost or 0:>9,.2f}"
            f"  expected incremental margin {margin or 0:>9,.2f}"
        )
    lines.append(f"  daily budget {cfg.daily_coupon_budget:,.2f}")
    matured = con.execute(
        """select policy, count(distinct send_date), sum(n_treated), sum(n_holdout), sum(incremental_purchases_7d),
                  sum(coupon_cost), sum(incremental_margin_7d)
           from coupon_results where is_matured_7d group by 1 order by 1"""
    ).fetchall()
    if not matured:
        lines.append(
            "  coupon_results: no 7-day window has matured yet (a send matures 7 days after it goes out;"
            " `python -m ml loop --days 35` runs the closed loop on the simulated shop)"
        )
    for policy, days, treated, held, purchases, cost, margin in matured:
        lines.append(
            f"  realised, {policy:<10} {days} send days, {treated:,} treated vs {held:,} holdout: "
            f"{purchases or 0:+.1f} purchases, coupon cost {cost or 0:,.2f}, incremental margin {margin or 0:+,.2f}"
        )
    return lines


def _evaluation_lines(con) -> list[str]:
    """The newest day's policy evidence (policy_evaluations), and whether any policy is shown to earn."""
    latest = con.execute("select max(evaluation_date) from policy_evaluations").fetchone()[0]
    if latest is None:
        return ["\nPolicy evidence: no randomised campaign or holdout has matured yet"]
    rows = con.execute(
        """select evidence_source, policy, value, value_ci_low, value_ci_high, difference_to_leader,
                  difference_ci_low, difference_ci_high, n_days, is_leader, earns_above_zero
           from policy_evaluations where evaluation_date = ?
           order by case evidence_source when 'pooled' then 0 when 'campaign' then 1 else 2 end, value desc""",
        [latest],
    ).fetchall()
    lines = [f"\nPolicy evidence for {latest} (incremental margin per day at the budget, 95% interval):"]
    for source, policy, value, low, high, diff, d_low, d_high, days, leader, _ in rows:
        vs = "leader" if leader else f"vs leader {diff:+,.0f} [{d_low:+,.0f} .. {d_high:+,.0f}]"
        lines.append(
            f"  {source:<8} {policy:<10} {value:>+9,.0f} [{low:+,.0f} .. {high:+,.0f}]  {vs}"
            + (f"  ({days} {'campaigns' if source == 'campaign' else 'send days'})" if days else "")
        )
    if not any(row[-1] for row in rows if row[1] != "none"):
        lines.append("  no policy earns above zero with confidence: its lower bound is at or below 0 for every one")
    return lines


def _champion_lines() -> list[str]:
    from ml.registry.aliases import MODEL_NAMES, UPLIFT_MODEL, list_versions

    try:
        rows = list_versions()
    except Exception as exc:  # the report must not fail because the tracking store is unreachable
        return [f"\nModels: tracking store unavailable ({exc})"]
    lines = ["\nChampion models:"]
    for name in MODEL_NAMES.values():
        champion = next((r for r in rows if r["model"] == name and "champion" in r["aliases"]), None)
        if champion:
            lines.append(
                f"  {name:<20} v{champion['version']} ({champion['flavour']}), test AUC "
                f"{champion['test_roc_auc']} on {champion['test_date']}"
            )
        else:
            lines.append(f"  {name:<20} no champion yet")
    uplift = next((r for r in rows if r["model"] == UPLIFT_MODEL and "champion" in r["aliases"]), None)
    if uplift:
        lines.append(
            f"  {UPLIFT_MODEL:<20} v{uplift['version']} ({uplift['flavour']}), test Qini {uplift['test_qini']} "
            f"on the campaign of {uplift['test_date']}"
        )
    else:
        lines.append(f"  {UPLIFT_MODEL:<20} no champion yet (needs randomised campaigns; the propensity rules target)")
    return lines


def print_summary() -> None:
    print("\n".join(summary_lines()))
