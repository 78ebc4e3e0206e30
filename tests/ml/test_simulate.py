"""The synthetic shop: deterministic for a seed, realistic rates, truth kept apart."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from ml.sim.behaviour import coupon_effect_truth
from ml.sim.run import extend_shop, load_checkpoint, simulate
from ml.sim.shop import CAMPAIGN_COUPONS, ShopSpec, make_products, make_users
from tests.conftest import point_env_at


def _digest(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(pd.read_parquet(p).to_csv().encode()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    }


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path, monkeypatch):
    spec = ShopSpec(seed=3, users=300, days=20, start=date(2026, 2, 1))
    digests = []
    for run, seed in (("a", 3), ("b", 3), ("c", 4)):
        monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path / run))
        simulate(ShopSpec(seed=seed, users=spec.users, days=spec.days, start=spec.start))
        digests.append(_digest(tmp_path / run / "inbox"))
    assert digests[0] == digests[1]
    assert len(digests[0]) >= 20 + 2  # a file per day plus users and products
    assert digests[0] != digests[2]


def test_a_day_does_not_depend_on_how_far_the_simulation_runs(tmp_path, monkeypatch):
    for run, days in (("short", 10), ("long", 15)):
        monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path / run))
        simulate(ShopSpec(seed=5, users=300, days=15, start=date(2026, 3, 1)), through=date(2026, 3, 1 + days - 1))
    day = "events/events_2026-03-08.parquet"
    short = pd.read_parquet(tmp_path / "short" / "inbox" / day)
    long = pd.read_parquet(tmp_path / "long" / "inbox" / day)
    pd.testing.assert_frame_equal(short, long)


def test_rates_and_oracle_auc_are_in_the_documented_range(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path))
    stats = simulate(ShopSpec(seed=42, users=5000, days=180))
    assert 0.05 <= stats["purchase_rate_30d"] <= 0.30
    assert 0.70 <= stats["oracle_auc_purchase_30d"] <= 0.88
    assert stats["recently_active_users"] > 1000


def test_events_have_the_documented_schema_and_pii_stays_in_the_users_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path))
    simulate(ShopSpec(seed=1, users=400, days=30))
    events = pd.read_parquet(tmp_path / "inbox" / "events")
    assert set(events["event_type"]) == {"view", "cart", "remove_from_cart", "purchase", "search", "favourite"}
    assert {"event_at", "event_type", "user_id", "product_id", "price", "session_id"} <= set(events.columns)
    searches = events[events["event_type"] == "search"]
    assert searches["product_id"].isna().all() and searches["category"].isna().all()
    favourites = events[events["event_type"] == "favourite"]
    assert favourites["product_id"].notna().all() and favourites["price"].gt(0).all()
    purchases = events[events["event_type"] == "purchase"]
    assert purchases["order_id"].notna().all() and (purchases["price"] > 0).all()
    assert not {"email", "phone"} & set(events.columns)
    users = pd.read_parquet(tmp_path / "inbox" / "users.parquet")
    assert users["email"].str.contains("@").all()
    sends = pd.read_parquet(tmp_path / "inbox" / "coupon_sends")
    assert set(sends["group_name"]) == {"treatment", "control"}
    assert sends.loc[sends["group_name"] == "control", "coupon_code"].isna().all()
    truth = pd.read_parquet(tmp_path / "truth" / "probabilities")
    assert truth["p_purchase_30d"].between(0, 1).all()
    assert not (tmp_path / "inbox" / "user_traits.parquet").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "--users", "0"], "must be positive"),
        (["simulate", "--start", "2026-13-01"], "not a date"),
    ],
)
def test_bad_cli_arguments_are_clear_errors(argv, message, capsys):
    from ml.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


# --- Coupon response, its truth, the closed loop and resuming -------------------------------------------

LOOP_START = date(2026, 3, 2)  # campaigns send on day index 7, so days 0-6 see only the pipeline's coupons


def _targets_file(day: date):
    from ml.config import settings

    return settings().targets_dir / f"as_of_date={day}" / "part-0.parquet"


def _write_targets(day: date, targets: pd.DataFrame) -> None:
    path = _targets_file(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    targets.to_parquet(path)


def _file_bytes(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def delivered_shop(tmp_path_factory):
    """20,000 users, 7 days; on day 0 the pipeline's send list gives half the known users a coupon."""
    root = tmp_path_factory.mktemp("delivered_shop")
    spec = ShopSpec(seed=21, users=20_000, days=7, start=LOOP_START)
    rng = np.random.default_rng(0)
    user_id = np.arange(1, spec.users + 1, dtype="int64")
    targets = pd.DataFrame(
        {
            "user_id": user_id,
            "coupon_code": np.array(list(CAMPAIGN_COUPONS))[rng.integers(0, len(CAMPAIGN_COUPONS), spec.users)],
            "is_holdout": rng.random(spec.users) < 0.5,
        }
    )
    # Rows the shop cannot deliver: an unknown user and a row without a code.
    junk = pd.DataFrame({"user_id": [10**7, 1], "coupon_code": ["SAVE15", None], "is_holdout": [False, False]})
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root)
        _write_targets(LOOP_START, pd.concat([targets[targets["user_id"] != 1], junk], ignore_index=True))
        simulate(spec)
    data = root / "data"
    events = pd.read_parquet(data / "inbox" / "events")
    return {
        "spec": spec,
        "data": data,
        "targets": targets.set_index("user_id"),
        "purchases": events[events["event_type"] == "purchase"],
        "events": events,
        "traits": pd.read_parquet(data / "truth" / "user_traits.parquet").set_index("user_id"),
        "truth": pd.read_parquet(
            data / "truth" / "coupon_effects" / f"as_of_date={LOOP_START}" / "part-0.parquet"
        ).set_index("user_id"),
    }


def test_segments_follow_price_sensitivity_with_the_documented_shares():
    from sklearn.metrics import roc_auc_score

    _, traits = make_users(ShopSpec(users=20_000), np.random.default_rng([42, 0]))
    shares = traits["coupon_segment"].value_counts(normalize=True)
    for segment, share in {"persuadable": 0.35, "sure_thing": 0.30, "lost_cause": 0.25, "sleeping_dog": 0.10}.items():
        assert abs(shares[segment] - share) < 0.05, shares
    sensitivity = traits.groupby("coupon_segment")["price_sensitivity"].mean()
    assert sensitivity["persuadable"] > sensitivity["sure_thing"] > sensitivity["sleeping_dog"]
    # Predictable, not determined: price sensitivity alone ranks persuadables well but far from perfectly.
    auc = roc_auc_score(traits["coupon_segment"] == "persuadable", traits["price_sensitivity"])
    assert 0.7 < auc < 0.9
    persuadable = traits[traits["coupon_segment"] == "persuadable"]
    assert (persuadable["price_sensitivity"] < 0.3).any()  # no hard threshold


def test_price_sensitive_shoppers_cart_and_remove_more_when_they_do_not_buy(delivered_shop):
    events, traits = delivered_shop["events"], delivered_shop["traits"]
    counts = pd.crosstab([events["session_id"], events["user_id"]], events["event_type"]).reset_index()
    browsing = counts[counts["purchase"] == 0].join(traits["price_sensitivity"], on="user_id")
    high = browsing[browsing["price_sensitivity"] > 0.6].sum(numeric_only=True)
    low = browsing[browsing["price_sensitivity"] < 0.4].sum(numeric_only=True)
    assert high["cart"] / high["view"] > 1.5 * low["cart"] / low["view"]
    assert high["remove_from_cart"] / high["cart"] > 1.5 * low["remove_from_cart"] / low["cart"]


def test_coupon_truth_moves_with_the_hidden_segment(delivered_shop):
    truth = delivered_shop["truth"].join(delivered_shop["traits"][["coupon_segment", "signup_day"]])
    assert (truth["signup_day"] <= 0).all() and len(truth) == (delivered_shop["traits"]["signup_day"] <= 0).sum()
    alive = truth[truth["is_alive"]]
    control = alive["p_buy_7d_control"]
    for code in CAMPAIGN_COUPONS:
        with_coupon = alive[f"p_buy_7d_{code}"]
        segment = alive["coupon_segment"]
        assert (with_coupon[segment == "persuadable"] > control[segment == "persuadable"]).all()
        assert (with_coupon[segment == "sleeping_dog"] < control[segment == "sleeping_dog"]).all()
        # The others have coupon_effect 1, so only the code's own strength moves them (WELCOME10: 1.0).
        neutral = segment.isin(["sure_thing", "lost_cause"])
        moved = np.sign(with_coupon[neutral] - control[neutral])
        assert (moved == np.sign(CAMPAIGN_COUPONS[code] - 1.0)).all()
        assert truth.loc[~truth["is_alive"], f"p_buy_7d_{code}"].eq(0).all()
    assert control.between(0, 1).all() and (truth["expected_order_value"] > 0).all()


def test_coupon_truth_function_matches_the_written_file(delivered_shop):
    spec = delivered_shop["spec"]
    base_rng = np.random.default_rng([spec.seed, 0])
    products = make_products(base_rng)
    _, traits = make_users(spec, base_rng)
    alive = (traits["signup_day"] <= 0).to_numpy()  # nobody has churned before the first day
    frame = coupon_effect_truth(traits, products, alive, spec.start, 0)
    written = delivered_shop["truth"].reset_index()
    pd.testing.assert_frame_equal(frame, written[frame.columns], check_dtype=False)


def test_the_shop_delivers_the_send_list_but_not_to_the_holdout(delivered_shop):
    targets, purchases = delivered_shop["targets"], delivered_shop["purchases"]
    signed_up = delivered_shop["traits"]["signup_day"] <= 0
    expected = targets[~targets["is_holdout"] & signed_up.reindex(targets.index)].drop(index=1, errors="ignore")
    deliveries = pd.read_parquet(delivered_shop["data"] / "truth" / "deliveries")
    assert set(deliveries["as_of_date"].astype(str)) == {str(LOOP_START)}
    pd.testing.assert_series_equal(
        deliveries.set_index("user_id")["coupon_code"].sort_index(),
        expected["coupon_code"].sort_index(),
        check_names=False,
    )
    redeemed = purchases[purchases["coupon_code"].notna()]
    assert len(redeemed) > 100
    # Every coupon purchase is a delivered user's, with the code delivered to them; no holdout user has one.
    assert (redeemed["coupon_code"].to_numpy() == expected["coupon_code"].reindex(redeemed["user_id"]).to_numpy()).all()
    assert not redeemed["user_id"].isin(targets.index[targets["is_holdout"]]).any()
    assert not (delivered_shop["data"] / "inbox" / "coupon_sends").exists()  # not part of the shop's export


def test_realised_purchases_agree_with_the_coupon_truth(delivered_shop):
    truth = delivered_shop["truth"].join(delivered_shop["targets"]).drop(index=1, errors="ignore")  # 1: no code
    buyers = set(delivered_shop["purchases"]["user_id"])
    codes = truth["coupon_code"].to_numpy()
    treated_p = np.array([truth[f"p_buy_7d_{c}"].iloc[i] for i, c in enumerate(codes)])
    p = np.where(truth["is_holdout"], truth["p_buy_7d_control"], treated_p)
    bought = truth.index.isin(buyers)
    for arm in (truth["is_holdout"].to_numpy(), ~truth["is_holdout"].to_numpy()):
        expected, sd = p[arm].sum(), np.sqrt((p[arm] * (1 - p[arm])).sum())
        assert abs(bought[arm].sum() - expected) < 4 * sd, (bought[arm].sum(), expected, sd)
    assert treated_p[~truth["is_holdout"]].mean() > truth.loc[~truth["is_holdout"], "p_buy_7d_control"].mean()


def test_expected_order_value_matches_simulated_orders(delivered_shop):
    purchases = delivered_shop["purchases"]
    orders = (
        purchases.assign(value=purchases["price"] * purchases["quantity"])
        .groupby("order_id")
        .agg(value=("value", "sum"), user_id=("user_id", "first"))
    )
    last_day = delivered_shop["data"] / "truth" / "coupon_effects" / f"as_of_date={delivered_shop['spec'].end}"
    truth = pd.read_parquet(last_day).set_index("user_id")  # everyone signed up by the last day
    expected = truth["expected_order_value"].reindex(orders["user_id"])
    assert len(orders) > 1000 and expected.notna().all()
    assert orders["value"].mean() == pytest.approx(expected.mean(), rel=0.1)


def test_a_shop_whose_coupons_do_nothing(tmp_path, monkeypatch):
    point_env_at(monkeypatch, tmp_path)
    spec = ShopSpec(seed=4, users=500, days=3, coupon_effects=False)
    simulate(spec)
    truth = pd.read_parquet(tmp_path / "data" / "truth" / "coupon_effects")
    for code in CAMPAIGN_COUPONS:
        assert (truth[f"p_buy_7d_{code}"] == truth["p_buy_7d_control"]).all()
    assert ShopSpec.from_json((tmp_path / "data" / "inbox" / "shop_spec.json").read_text()) == spec
    old_file = '{"seed": 4, "users": 500, "days": 3, "start": "2026-01-01"}'
    assert ShopSpec.from_json(old_file).coupon_effects is True


def test_cli_simulates_a_shop_without_coupon_effects(tmp_path, monkeypatch, capsys):
    from ml.__main__ import main

    point_env_at(monkeypatch, tmp_path)
    assert main(["simulate", "--users", "60", "--days", "2", "--no-coupon-effects"]) == 0
    spec = ShopSpec.from_json((tmp_path / "data" / "inbox" / "shop_spec.json").read_text())
    assert spec.coupon_effects is False and spec.users == 60


def test_a_shop_simulated_in_steps_gives_the_same_files_as_one_run(tmp_path, monkeypatch):
    spec = ShopSpec(seed=9, users=400, days=20, start=date(2026, 2, 1))
    split, beyond = date(2026, 2, 10), spec.end + timedelta(days=4)
    # Coupons delivered the day before the split stay valid after it: the checkpoint must carry them.
    targets = pd.DataFrame(
        {"user_id": np.arange(1, 401), "coupon_code": "SAVE15", "is_holdout": np.arange(1, 401) % 3 == 0}
    )
    for run in ("whole", "steps"):
        point_env_at(monkeypatch, tmp_path / run)
        _write_targets(split - timedelta(days=1), targets)
        if run == "whole":
            simulate(spec, through=beyond)
            continue
        assert "days_simulated" not in simulate(spec, through=split)  # from day 0: the headline stats
        assert simulate(spec, through=split)["days_simulated"] == 0  # already there: nothing to do
        inbox = tmp_path / run / "data" / "inbox"
        resumed = extend_shop(date(2026, 2, 14))
        assert resumed["days_simulated"] == 4 and resumed["first_day"] == "2026-02-11"
        assert not (inbox / "events" / "events_2026-02-15.parquet").exists()  # only up to the day asked for
        assert extend_shop(beyond)["days_simulated"] == (beyond - date(2026, 2, 14)).days
    whole, steps = tmp_path / "whole" / "data", tmp_path / "steps" / "data"
    for folder in ("inbox", "truth"):
        assert _file_bytes(whole / folder) == _file_bytes(steps / folder)
    assert len(_file_bytes(whole / "inbox" / "events")) == spec.days + 4
    assert len(pd.read_parquet(whole / "inbox" / "users.parquet")) == spec.users  # everyone signed up by now
    a, b = (load_checkpoint(root / "truth" / "shop_state.npz") for root in (whole, steps))
    assert a.day_index == b.day_index == spec.days + 3
    assert (a.state.coupon_code == b.state.coupon_code).all() and (a.last_visit == b.last_visit).all()
    assert (pd.read_parquet(whole / "inbox" / "events")["coupon_code"] == "SAVE15").any()


def test_searches_and_favourites_leave_the_rest_of_the_shop_as_it_was(tmp_path, monkeypatch):
    """They are drawn from their own generator: without them, every other event is the same (ids aside: an id
    numbers the day's events in order)."""
    frames = []
    for rates in ("as_built", "none"):
        data = tmp_path / rates
        monkeypatch.setenv("SHOP_DATA_DIR", str(data))
        if rates == "none":
            monkeypatch.setattr("ml.sim.day.SEARCH_RATE", {"base": 0.0, "per_intent": 0.0, "cap": 0.0})
            monkeypatch.setattr("ml.sim.day.FAVOURITE_RATE", {"base": 0.0, "per_intent": 0.0, "per_sensitivity": 0.0})
        simulate(ShopSpec(seed=3, users=300, days=20))
        events = pd.read_parquet(data / "inbox" / "events").drop(columns="event_id")
        frames.append(events)
    with_them, without = frames
    assert with_them["event_type"].isin(["search", "favourite"]).sum() > 100
    assert not without["event_type"].isin(["search", "favourite"]).any()
    rest = with_them[~with_them["event_type"].isin(["search", "favourite"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(rest, without.reset_index(drop=True), check_dtype=False)
