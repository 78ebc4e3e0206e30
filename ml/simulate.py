"""A synthetic shop: users with hidden traits produce daily sessions, carts, purchases and coupon responses.

The simulator writes what a real shop would export (daily event files, a user and a product table,
coupon campaign sends) into the inbox, and the ground truth (hidden traits and each user's true label
probabilities per as-of date) into a separate truth folder that no feature or model reads.

Randomness is seeded from (seed, day), so a day's events do not depend on how far the run goes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd

from ml.config import settings
from ml.progress import progress
from ml.storage import EXPORT_SCHEMA, write_parquet_atomic

log = logging.getLogger(__name__)

CATEGORIES = ["electronics", "fashion", "home", "beauty", "sports", "books", "toys", "grocery"]
CATEGORY_PRICE = [180.0, 45.0, 60.0, 25.0, 55.0, 15.0, 30.0, 12.0]
COUNTRIES = (["DE", "FR", "ES", "IT", "NL", "PL", "SE"], [0.26, 0.2, 0.13, 0.13, 0.1, 0.1, 0.08])
DEVICES = (["mobile", "desktop", "tablet"], [0.6, 0.32, 0.08])
WEEKDAY_FACTOR = np.array([0.95, 0.9, 0.92, 0.97, 1.08, 1.22, 1.16])  # Monday first
# Coupon codes sent by past campaigns and how strongly each moves a responsive user.
CAMPAIGN_COUPONS = {"WELCOME10": 1.0, "SAVE15": 1.2, "FREESHIP": 0.8, "EUR5OFF": 0.9}
CAMPAIGN_EVERY_DAYS = 14
COUPON_VALID_DAYS = 7
LABEL_HORIZON_DAYS = 30
N_PRODUCTS = 600


@dataclass(frozen=True)
class ShopSpec:
    """What defines a simulated shop: the same spec always gives the same files."""

    seed: int = 42
    users: int = 20_000
    days: int = 180
    start: date = date(2026, 1, 1)

    @property
    def end(self) -> date:
        """The last simulated day (inclusive)."""
        return self.start + timedelta(days=self.days - 1)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "start": self.start.isoformat()})

    @classmethod
    def from_json(cls, text: str) -> ShopSpec:
        raw = json.loads(text)
        return cls(seed=raw["seed"], users=raw["users"], days=raw["days"], start=date.fromisoformat(raw["start"]))


def make_products(rng: np.random.Generator) -> pd.DataFrame:
    category = rng.integers(0, len(CATEGORIES), N_PRODUCTS)
    base = np.array(CATEGORY_PRICE)[category]
    return pd.DataFrame(
        {
            "product_id": np.arange(1, N_PRODUCTS + 1, dtype="int64"),
            "category": np.array(CATEGORIES)[category],
            "brand": [f"brand_{b:02d}" for b in rng.integers(1, 41, N_PRODUCTS)],
            "price": np.round(base * rng.lognormal(0.0, 0.45, N_PRODUCTS), 2),
        }
    )


def make_users(spec: ShopSpec, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (public user table, hidden traits). About 55% exist before the start, the rest arrive."""
    n = spec.users
    existing = rng.random(n) < 0.55
    signup_day = np.where(existing, rng.integers(-365, 0, n), rng.integers(0, spec.days, n))
    signup_at = [
        datetime.combine(spec.start + timedelta(days=int(d)), time()) + timedelta(seconds=int(s))
        for d, s in zip(signup_day, rng.integers(0, 86_400, n), strict=True)
    ]
    user_id = np.arange(1, n + 1, dtype="int64")
    users = pd.DataFrame(
        {
            "user_id": user_id,
            "signup_at": pd.to_datetime(signup_at),
            "country": rng.choice(COUNTRIES[0], n, p=COUNTRIES[1]),
            "device": rng.choice(DEVICES[0], n, p=DEVICES[1]),
            "marketing_consent": rng.random(n) < 0.7,
            "email": [f"user{u}@example.com" for u in user_id],
            "phone": [f"+49{rng_digits}" for rng_digits in rng.integers(10**9, 10**10, n)],
        }
    )
    segment = rng.choice(["persuadable", "sure_thing", "lost_cause", "sleeping_dog"], n, p=[0.35, 0.3, 0.25, 0.1])
    coupon_effect = np.select(
        [segment == "persuadable", segment == "sleeping_dog"],
        [rng.uniform(1.8, 3.0, n), rng.uniform(0.3, 0.6, n)],
        1.0,
    )
    traits = pd.DataFrame(
        {
            "user_id": user_id,
            "signup_day": signup_day,
            "visit_rate": np.clip(rng.lognormal(np.log(0.25), 0.8, n), 0.003, 2.0),
            # Engagement fades with tenure at a personal pace: visible in the activity trend.
            "engagement_decay": np.clip(rng.lognormal(np.log(0.002), 0.8, n), 0.0001, 0.05),
            "purchase_intent": 1 / (1 + np.exp(-rng.normal(-3.8, 1.3, n))),
            "price_sensitivity": rng.beta(2, 2, n),
            "coupon_segment": segment,
            "coupon_effect": coupon_effect,
            # Leaving for good: sudden and unseen, so kept rare; most decline shows as fading engagement.
            "churn_hazard": np.clip(rng.lognormal(np.log(0.0008), 0.8, n), 0.0001, 0.03),
        }
    )
    tastes = rng.dirichlet(np.full(len(CATEGORIES), 0.4), n)
    for i, name in enumerate(CATEGORIES):
        traits[f"taste_{name}"] = tastes[:, i]
    return users, traits


def promo_factor(day: date) -> float:
    """Site-wide promotions: three days every four weeks lift purchase odds."""
    return 1.4 if day.toordinal() % 28 < 3 else 1.0


def calendar_rates(day: date) -> tuple[float, float]:
    """(visit multiplier, purchase multiplier) for a calendar day."""
    promo = promo_factor(day)
    return WEEKDAY_FACTOR[day.weekday()] * (1.1 if promo > 1 else 1.0), promo


def visit_rates(traits: pd.DataFrame, day_index: int) -> np.ndarray:
    """Each user's expected sessions per day on `day_index` (before calendar effects)."""
    tenure = np.maximum(day_index - traits["signup_day"].to_numpy(), 0)
    return traits["visit_rate"].to_numpy() * np.exp(-traits["engagement_decay"].to_numpy() * tenure)


def true_probabilities(traits: pd.DataFrame, alive: np.ndarray, as_of: date, day_index: int) -> pd.DataFrame:
    """Each user's true P(purchase in [T, T+30)) and P(no visit in [T, T+30)) given the hidden state.

    Exact for the organic process (a user alive at T may churn each day before visiting); the effect of
    coupons that are sent later is left out, so this is the best score a model without them could reach.
    """
    intent = traits["purchase_intent"].to_numpy()
    hazard = traits["churn_hazard"].to_numpy()
    alive_no_buy = alive.astype(float)
    gone_no_buy = np.zeros(len(traits))
    alive_no_visit = alive.astype(float)
    gone_no_visit = 1.0 - alive.astype(float)
    for offset in range(LABEL_HORIZON_DAYS):
        visit_mult, buy_mult = calendar_rates(as_of + timedelta(days=offset))
        rate = visit_rates(traits, day_index + offset)
        gone_no_buy += alive_no_buy * hazard
        alive_no_buy *= (1 - hazard) * np.exp(-rate * visit_mult * np.minimum(intent * buy_mult, 0.95))
        gone_no_visit += alive_no_visit * hazard
        alive_no_visit *= (1 - hazard) * np.exp(-rate * visit_mult)
    p_no_buy = alive_no_buy + gone_no_buy + (1.0 - alive)  # churned users never buy again
    return pd.DataFrame(
        {
            "user_id": traits["user_id"].to_numpy(),
            "is_alive": alive,
            "p_purchase_30d": 1.0 - p_no_buy,
            "p_no_visit_30d": alive_no_visit + gone_no_visit,
        }
    )


@dataclass
class ShopState:
    """What carries over from one day to the next."""

    churned: np.ndarray
    coupon_until: np.ndarray  # last day index a sent coupon is valid, -1 if none
    coupon_code: np.ndarray
    next_order: int = 1
    next_session: int = 1


def simulate_day(
    spec: ShopSpec,
    day_index: int,
    users: pd.DataFrame,
    traits: pd.DataFrame,
    products: pd.DataFrame,
    state: ShopState,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Advance the shop one day; return (events, coupon sends) for that day."""
    day = spec.start + timedelta(days=day_index)
    rng = np.random.default_rng([spec.seed, day.toordinal()])
    n = len(traits)
    signed_up = traits["signup_day"].to_numpy() <= day_index
    state.churned |= signed_up & (rng.random(n) < traits["churn_hazard"].to_numpy())
    alive = signed_up & ~state.churned

    sends = _run_campaign(spec, day_index, day, users, signed_up, state, rng)

    visit_mult, buy_mult = calendar_rates(day)
    n_sessions = rng.poisson(visit_rates(traits, day_index) * visit_mult) * alive
    session_user = np.repeat(np.arange(n), n_sessions)
    s = len(session_user)
    has_coupon = state.coupon_until[session_user] >= day_index
    coupon_mult = np.where(
        has_coupon,
        traits["coupon_effect"].to_numpy()[session_user]
        * np.array([CAMPAIGN_COUPONS.get(c, 1.0) for c in state.coupon_code[session_user]]),
        1.0,
    )
    p_buy = np.minimum(traits["purchase_intent"].to_numpy()[session_user] * buy_mult * coupon_mult, 0.95)
    buys = rng.random(s) < p_buy
    # Intent shows before it converts: keen shoppers browse deeper and cart more.
    session_intent = traits["purchase_intent"].to_numpy()[session_user]
    n_views = 1 + rng.poisson(2.5 + 25 * session_intent)

    # Views: pick a category by taste, then a product in it.
    view_session = np.repeat(np.arange(s), n_views)
    taste = traits[[f"taste_{c}" for c in CATEGORIES]].to_numpy()[session_user[view_session]]
    category = (rng.random((len(view_session), 1)) > np.cumsum(taste, axis=1)).sum(axis=1)
    category = np.minimum(category, len(CATEGORIES) - 1)
    # Products sorted by category: a category's products are one contiguous run of rows.
    order = np.argsort(products["category"].map(CATEGORIES.index).to_numpy(), kind="stable")
    counts = np.bincount(products["category"].map(CATEGORIES.index), minlength=len(CATEGORIES))
    first = np.cumsum(counts) - counts
    product_row = order[first[category] + (rng.random(len(category)) * counts[category]).astype(int)]
    cart_rate = np.minimum(0.03 + 1.5 * session_intent, 0.5)[view_session]
    carted = rng.random(len(view_session)) < np.where(buys[view_session], 0.5, cart_rate)
    last_view = np.r_[view_session[1:] != view_session[:-1], True]
    carted |= last_view & buys[view_session]  # a buying session carts at least its last view

    start_second = rng.integers(0, 86_400 - 3_600, s)
    view_offset = np.arange(len(view_session)) - np.repeat(np.cumsum(n_views) - n_views, n_views)
    view_at = start_second[view_session] + 45 * view_offset

    stamp = f"{day:%Y%m%d}"  # formatted once: a per-row strftime dominated the simulation time
    session_ids = np.array([f"s{stamp}-{i}" for i in range(state.next_session, state.next_session + s)], dtype=object)
    state.next_session += s
    order_ids = np.array([f"o{stamp}-{i}" for i in range(state.next_order, state.next_order + s)], dtype=object)
    state.next_order += s

    frames = [_events(day, "view", view_session, view_at, product_row, session_user, session_ids, products)]
    cart_rows = np.flatnonzero(carted)
    frames.append(
        _events(
            day,
            "cart",
            view_session[cart_rows],
            view_at[cart_rows] + 10,
            product_row[cart_rows],
            session_user,
            session_ids,
            products,
        )
    )
    removed = cart_rows[(~buys[view_session[cart_rows]]) & (rng.random(len(cart_rows)) < 0.3)]
    frames.append(
        _events(
            day,
            "remove_from_cart",
            view_session[removed],
            view_at[removed] + 20,
            product_row[removed],
            session_user,
            session_ids,
            products,
        )
    )
    bought = cart_rows[buys[view_session[cart_rows]]]
    purchase = _events(
        day,
        "purchase",
        view_session[bought],
        start_second[view_session[bought]] + 45 * n_views[view_session[bought]] + 60,
        product_row[bought],
        session_user,
        session_ids,
        products,
    )
    purchase["quantity"] = rng.integers(1, 4, len(bought)) * (rng.random(len(bought)) < 0.3) + 1
    purchase["quantity"] = purchase["quantity"].clip(upper=3)
    purchase["order_id"] = order_ids[view_session[bought]]
    used_coupon = has_coupon[view_session[bought]]
    purchase["coupon_code"] = np.where(used_coupon, state.coupon_code[session_user[view_session[bought]]], None)
    frames.append(purchase)
    # A redeemed coupon is spent.
    state.coupon_until[np.unique(session_user[view_session[bought]][used_coupon])] = -1

    events = pd.concat(frames, ignore_index=True).sort_values(["event_at", "event_type"], kind="stable")
    events.insert(0, "event_id", [f"e{stamp}-{i}" for i in range(len(events))])
    return events.reset_index(drop=True), sends


def _events(day, event_type, view_session, seconds, product_row, session_user, session_ids, products):
    midnight = pd.Timestamp(day)
    return pd.DataFrame(
        {
            "event_at": midnight + pd.to_timedelta(np.minimum(seconds, 86_399), unit="s"),
            "event_type": event_type,
            "user_id": (session_user[view_session] + 1).astype("int64"),
            "product_id": products["product_id"].to_numpy()[product_row],
            "category": products["category"].to_numpy()[product_row],
            "price": products["price"].to_numpy()[product_row],
            "quantity": np.ones(len(view_session), dtype="int64"),
            "session_id": session_ids[view_session],
            "order_id": pd.Series([None] * len(view_session), dtype="object"),
            "coupon_code": pd.Series([None] * len(view_session), dtype="object"),
        }
    )


def _run_campaign(spec, day_index, day, users, signed_up, state, rng) -> pd.DataFrame:
    """Every two weeks a randomised campaign: half of consenting users get a coupon, half are control."""
    if day_index % CAMPAIGN_EVERY_DAYS != CAMPAIGN_EVERY_DAYS // 2:
        return pd.DataFrame(columns=["campaign_id", "user_id", "sent_at", "group_name", "coupon_code"])
    eligible = np.flatnonzero(signed_up & users["marketing_consent"].to_numpy())
    treated = rng.random(len(eligible)) < 0.5
    codes = rng.choice(list(CAMPAIGN_COUPONS), len(eligible))
    state.coupon_until[eligible[treated]] = day_index + COUPON_VALID_DAYS - 1
    state.coupon_code[eligible[treated]] = codes[treated]
    return pd.DataFrame(
        {
            "campaign_id": f"c{day:%Y%m%d}",
            "user_id": (eligible + 1).astype("int64"),
            "sent_at": pd.Timestamp(day) + pd.Timedelta(hours=8),
            "group_name": np.where(treated, "treatment", "control"),
            "coupon_code": np.where(treated, codes, None),
        }
    )


def simulate(spec: ShopSpec, through: date | None = None) -> dict[str, float]:
    """Write the shop's exports for every day up to `through` (default: the spec's last day).

    Returns the headline rates: the 30-day purchase rate among recently active users and the oracle
    ROC AUC on the newest as-of date whose label window has closed.
    """
    from sklearn.metrics import roc_auc_score

    cfg = settings()
    through = through or spec.end
    n_days = (through - spec.start).days + 1
    if n_days < 1:
        raise ValueError(f"--through {through} is before the shop starts on {spec.start}")
    base_rng = np.random.default_rng([spec.seed, 0])
    products = make_products(base_rng)
    users, traits = make_users(spec, base_rng)
    state = ShopState(
        churned=np.zeros(spec.users, bool),
        coupon_until=np.full(spec.users, -1),
        coupon_code=np.full(spec.users, "", dtype=object),
    )
    inbox, truth = cfg.inbox_dir, cfg.truth_dir
    reference = n_days - 1 - LABEL_HORIZON_DAYS  # newest day index whose label window has closed
    last_visit = np.full(spec.users, -(10**6))
    ref_active = ref_bought = ref_truth = None
    for day_index in progress(range(n_days), "simulating days", total=n_days):
        day = spec.start + timedelta(days=day_index)
        signed_up = traits["signup_day"].to_numpy() <= day_index
        probs = true_probabilities(traits, signed_up & ~state.churned, day, day_index)
        write_parquet_atomic(probs[signed_up], truth / "probabilities" / f"as_of_date={day}" / "part-0.parquet")
        if day_index == reference:
            ref_active = day_index - last_visit <= LABEL_HORIZON_DAYS
            ref_bought = np.zeros(spec.users, bool)
            ref_truth = probs["p_purchase_30d"].to_numpy()
        events, sends = simulate_day(spec, day_index, users, traits, products, state)
        visited = events["user_id"].unique() - 1
        last_visit[visited] = day_index
        if ref_bought is not None and day_index < reference + LABEL_HORIZON_DAYS:
            ref_bought[events.loc[events["event_type"] == "purchase", "user_id"].unique() - 1] = True
        write_parquet_atomic(events, inbox / "events" / f"events_{day}.parquet", schema=EXPORT_SCHEMA)
        if len(sends):
            write_parquet_atomic(sends, inbox / "coupon_sends" / f"coupon_sends_{day}.parquet")
    visible = users[traits["signup_day"].to_numpy() < n_days]
    write_parquet_atomic(visible, inbox / "users.parquet")
    write_parquet_atomic(products, inbox / "products.parquet")
    write_parquet_atomic(traits, truth / "user_traits.parquet")
    (inbox / "shop_spec.json").write_text(spec.to_json())
    if ref_active is None or ref_active.sum() == 0:
        return {"reference_as_of_date": None}
    rate = float(ref_bought[ref_active].mean())
    oracle = float(roc_auc_score(ref_bought[ref_active], ref_truth[ref_active]))
    return {
        "reference_as_of_date": str(spec.start + timedelta(days=reference)),
        "recently_active_users": int(ref_active.sum()),
        "purchase_rate_30d": round(rate, 4),
        "oracle_auc_purchase_30d": round(oracle, 4),
    }


def extend_shop(through: date) -> dict[str, float]:
    """Simulate the shop recorded in the inbox (or the default one) far enough to include `through`."""
    cfg = settings()
    spec_file = cfg.inbox_dir / "shop_spec.json"
    spec = ShopSpec.from_json(spec_file.read_text()) if spec_file.exists() else ShopSpec(seed=cfg.seed)
    if through < spec.start:
        raise ValueError(f"cannot simulate {through}: the simulated shop starts on {spec.start}")
    return simulate(spec, through=max(through, spec.end))
