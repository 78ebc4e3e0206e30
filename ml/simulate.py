"""A synthetic shop: users with hidden traits produce daily sessions, carts, purchases and coupon responses.

The simulator writes what a real shop would export (daily event files, a user and a product table,
coupon campaign sends) into the inbox, and the ground truth (hidden traits, each user's true label
probabilities per as-of date, the true effect of every coupon code on every user and what the shop
delivered for the pipeline) into a separate truth folder that no feature or model reads.

Randomness is seeded from (seed, day), so a day's events do not depend on how far the run goes, and a
run can stop after any day and continue later from the state saved in `truth/shop_state.npz`: the files
are the same as from one run.

Coupon response is partly predictable from behaviour. A user's hidden coupon segment (persuadable,
sure thing, lost cause, sleeping dog) is drawn with odds that depend on their price sensitivity, and
price sensitivity shows in how they use the cart: in sessions that end without a purchase,
price-sensitive shoppers put more in the cart and take more out again, waiting for a better price.
This follows a published pattern: shoppers park items in the cart while waiting for a lower price or a
discount and abandon the cart meanwhile (Close & Kukar-Kinney 2010, J. Bus. Res. 63(9-10); Huang et
al. 2022, Front. Psychol. 12:829696, "waiting for lower prices" drives hesitation at checkout and
abandonment), so the shoppers a coupon moves are the cart abandoners, and an uplift model can find
them from cart-abandonment features instead of from the hidden label.

Closed loop: if the pipeline left a send list for day D in `targets/as_of_date=D/part-0.parquet`, the
shop delivers those coupons (not to holdout rows) on the morning of D like a campaign coupon.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.config import LABEL_HORIZON_DAYS, settings
from ml.progress import progress
from ml.storage import EXPORT_SCHEMA, temporary_path, write_parquet_atomic

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
# The window of the coupon-effect truth: P(a purchase within 7 days), with and without a coupon.
UPLIFT_HORIZON_DAYS = 7
N_PRODUCTS = 600
# Coupon segments, drawn by a multinomial logit in (price_sensitivity - 0.5): persuadables lean
# price-sensitive, sleeping dogs price-insensitive, the other two do not depend on it. The intercepts
# give shares of about 35/30/25/10% under Beta(2, 2) price sensitivity; with a slope of 10 price
# sensitivity alone ranks persuadables with an AUC of about 0.90 (noisy, no hard threshold).
SEGMENTS = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
SEGMENT_INTERCEPT = np.array([0.0, 0.533, 0.351, -2.508])
SEGMENT_SLOPE = np.array([10.0, 0.0, 0.0, -10.0])
# Each segment's coupon-effect multiplier on a session's purchase probability, drawn uniform on (low, high):
# persuadables buy more with a coupon, sleeping dogs less, the others as they would (times the code's strength).
COUPON_EFFECT_RANGES = {
    "persuadable": (1.8, 3.0),
    "sure_thing": (1.0, 1.0),
    "lost_cause": (1.0, 1.0),
    "sleeping_dog": (0.3, 0.6),
}
# A buying session's basket (see simulate_day): 1 + Poisson(2.5 + 25 * intent) views, the last one
# always carted and each other one with probability 1/2; every carted line is bought in quantity 1
# (p 0.7) or 1 + U{1, 2, 3} capped at 3, i.e. 2 (p 0.1) or 3 (p 0.2).
BASE_EXTRA_VIEWS, EXTRA_VIEWS_PER_INTENT = 2.5, 25.0
BUYING_CART_RATE = 0.5
MEAN_QUANTITY = 0.7 * 1 + 0.3 * (2 + 3 + 3) / 3  # 1.5
# A session that does not buy carts each view with probability base + per_intent x intent +
# per_sensitivity x price_sensitivity (capped), and takes each carted item out again with probability
# base + per_sensitivity x price_sensitivity: price-sensitive shoppers park items waiting for a discount.
BROWSE_CART_RATE = {"base": 0.02, "per_intent": 1.5, "per_sensitivity": 0.2, "cap": 0.6}
REMOVE_RATE = {"base": 0.05, "per_sensitivity": 0.5}
CHECKPOINT_FILE = "shop_state.npz"


@dataclass(frozen=True)
class ShopSpec:
    """What defines a simulated shop: the same spec always gives the same files."""

    seed: int = 42
    users: int = 20_000
    days: int = 180
    start: date = date(2026, 1, 1)
    # False: a placebo shop where every coupon leaves the purchase probability as it is.
    coupon_effects: bool = True

    @property
    def end(self) -> date:
        """The last simulated day (inclusive)."""
        return self.start + timedelta(days=self.days - 1)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "start": self.start.isoformat()})

    @classmethod
    def from_json(cls, text: str) -> ShopSpec:
        raw = json.loads(text)
        return cls(
            seed=raw["seed"],
            users=raw["users"],
            days=raw["days"],
            start=date.fromisoformat(raw["start"]),
            coupon_effects=bool(raw.get("coupon_effects", True)),  # files from before the option: True
        )


def coupon_strengths(spec: ShopSpec) -> dict[str, float]:
    """How strongly each campaign code moves a responsive user: all 1.0 in a shop whose coupons do nothing."""
    return dict(CAMPAIGN_COUPONS) if spec.coupon_effects else dict.fromkeys(CAMPAIGN_COUPONS, 1.0)


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
    price_sensitivity = rng.beta(2, 2, n)
    segment = np.array(SEGMENTS)[_draw_segments(price_sensitivity, rng)]
    coupon_effect = np.select(
        [segment == "persuadable", segment == "sleeping_dog"],
        [rng.uniform(*COUPON_EFFECT_RANGES["persuadable"], n), rng.uniform(*COUPON_EFFECT_RANGES["sleeping_dog"], n)],
        1.0,
    )
    if not spec.coupon_effects:
        coupon_effect = np.ones(n)  # segments stay drawn (same users), but no coupon moves anyone
    traits = pd.DataFrame(
        {
            "user_id": user_id,
            "signup_day": signup_day,
            "visit_rate": np.clip(rng.lognormal(np.log(0.25), 0.8, n), 0.003, 2.0),
            # Engagement fades with tenure at a personal pace: visible in the activity trend.
            "engagement_decay": np.clip(rng.lognormal(np.log(0.002), 0.8, n), 0.0001, 0.05),
            "purchase_intent": 1 / (1 + np.exp(-rng.normal(-3.8, 1.3, n))),
            "price_sensitivity": price_sensitivity,
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


def segment_probabilities(price_sensitivity: np.ndarray) -> np.ndarray:
    """P(each of SEGMENTS | price sensitivity), one row per user: a multinomial logit (see SEGMENT_SLOPE)."""
    logits = SEGMENT_INTERCEPT + np.outer(np.asarray(price_sensitivity, float) - 0.5, SEGMENT_SLOPE)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def _draw_segments(price_sensitivity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index into SEGMENTS per user, drawn from segment_probabilities."""
    cumulative = np.cumsum(segment_probabilities(price_sensitivity), axis=1)
    return np.minimum((rng.random((len(price_sensitivity), 1)) > cumulative).sum(axis=1), len(SEGMENTS) - 1)


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


@dataclass(frozen=True)
class Hidden:
    """The hidden traits the daily truth reads, as arrays: pandas look-ups in the day loops cost more."""

    user_id: np.ndarray
    signup_day: np.ndarray
    visit_rate: np.ndarray
    engagement_decay: np.ndarray
    intent: np.ndarray
    hazard: np.ndarray
    coupon_effect: np.ndarray
    order_value: np.ndarray

    @classmethod
    def of(cls, traits: pd.DataFrame, products: pd.DataFrame | None = None) -> Hidden:
        return cls(
            user_id=traits["user_id"].to_numpy(),
            signup_day=traits["signup_day"].to_numpy(),
            visit_rate=traits["visit_rate"].to_numpy(),
            engagement_decay=traits["engagement_decay"].to_numpy(),
            intent=traits["purchase_intent"].to_numpy(),
            hazard=traits["churn_hazard"].to_numpy(),
            coupon_effect=traits["coupon_effect"].to_numpy(),
            order_value=np.full(len(traits), np.nan) if products is None else expected_order_value(traits, products),
        )

    def visit_rates(self, day_index: int) -> np.ndarray:
        """Same as visit_rates(traits, day_index)."""
        tenure = np.maximum(day_index - self.signup_day, 0)
        return self.visit_rate * np.exp(-self.engagement_decay * tenure)


def true_probabilities(traits: pd.DataFrame | Hidden, alive: np.ndarray, as_of: date, day_index: int) -> pd.DataFrame:
    """Each user's true P(purchase in [T, T+30)) and P(no visit in [T, T+30)) given the hidden state.

    Exact for the organic process (a user alive at T may churn each day before visiting); the effect of
    coupons that are sent later is left out, so this is the best score a model without them could reach.
    """
    hidden = traits if isinstance(traits, Hidden) else Hidden.of(traits)
    intent, hazard = hidden.intent, hidden.hazard
    alive_no_buy = alive.astype(float)
    gone_no_buy = np.zeros(len(intent))
    alive_no_visit = alive.astype(float)
    gone_no_visit = 1.0 - alive.astype(float)
    for offset in range(LABEL_HORIZON_DAYS):
        visit_mult, buy_mult = calendar_rates(as_of + timedelta(days=offset))
        rate = hidden.visit_rates(day_index + offset)
        gone_no_buy += alive_no_buy * hazard
        alive_no_buy *= (1 - hazard) * np.exp(-rate * visit_mult * np.minimum(intent * buy_mult, 0.95))
        gone_no_visit += alive_no_visit * hazard
        alive_no_visit *= (1 - hazard) * np.exp(-rate * visit_mult)
    p_no_buy = alive_no_buy + gone_no_buy + (1.0 - alive)  # churned users never buy again
    return pd.DataFrame(
        {
            "user_id": hidden.user_id,
            "is_alive": alive,
            "p_purchase_30d": 1.0 - p_no_buy,
            "p_no_visit_30d": alive_no_visit + gone_no_visit,
        }
    )


def expected_order_value(traits: pd.DataFrame, products: pd.DataFrame) -> np.ndarray:
    """Each user's true expected order value: E[lines] x E[quantity] x E[price of a viewed product].

    From simulate_day's basket: a buying session has 1 + Poisson(2.5 + 25 x intent) views and carts
    the last one and each other one with probability 1/2 (so 1 + (2.5 + 25 x intent) / 2 lines on
    average), a view's category follows the user's tastes and its product is uniform within the
    category, and a line's quantity has mean 1.5. None of this depends on whether the session buys or
    holds a coupon, so it is also the value of an order a coupon brings.
    """
    category_price = products.groupby("category")["price"].mean().reindex(CATEGORIES).fillna(0.0).to_numpy()
    price = traits[[f"taste_{c}" for c in CATEGORIES]].to_numpy() @ category_price
    intent = traits["purchase_intent"].to_numpy()
    lines = 1 + BUYING_CART_RATE * (BASE_EXTRA_VIEWS + EXTRA_VIEWS_PER_INTENT * intent)
    return lines * MEAN_QUANTITY * price


def coupon_effect_truth(
    traits: pd.DataFrame,
    products: pd.DataFrame,
    alive: np.ndarray,
    as_of: date,
    day_index: int,
    strengths: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """For users signed up by `as_of`: P(a purchase on as_of .. as_of + 6) without and with each coupon.

    `p_buy_7d_control` has no coupon at all (one the user may still hold from a campaign is left out);
    `p_buy_7d_<CODE>` has that code delivered the morning of as_of, valid COUPON_VALID_DAYS days, which
    multiplies each session's purchase probability by coupon_effect x the code's strength (under the
    0.95 cap). Exact for the organic process like true_probabilities: calendar effects, tenure decay and
    the daily churn draw before any visit; a churned user has 0. A coupon is spent by the first purchase,
    which does not change P(at least one purchase). Campaign coupons sent later are left out.
    `strengths` defaults to CAMPAIGN_COUPONS (simulate passes coupon_strengths(spec), all 1 in a shop
    without coupon effects). `expected_order_value` is per order (buying session), coupon or not.
    """
    strengths = CAMPAIGN_COUPONS if strengths is None else strengths
    return pd.DataFrame(_coupon_effect_columns(Hidden.of(traits, products), alive, as_of, day_index, strengths))


def _coupon_effect_columns(
    hidden: Hidden, alive: np.ndarray, as_of: date, day_index: int, strengths: Mapping[str, float]
) -> dict[str, np.ndarray]:
    codes = list(CAMPAIGN_COUPONS)
    signed_up = hidden.signup_day <= day_index
    alive = np.asarray(alive, bool)[signed_up]
    intent = hidden.intent[signed_up][:, None]
    hazard = hidden.hazard[signed_up][:, None]
    effect = hidden.coupon_effect[signed_up]
    # Column 0 is the control arm; every column goes through the same arithmetic, so a multiplier of
    # exactly 1 gives exactly the control probability.
    coupon_mult = np.column_stack([np.ones(len(effect))] + [effect * strengths[code] for code in codes])
    survive = np.repeat(alive.astype(float)[:, None], 1 + len(codes), axis=1)
    p_buy = np.zeros_like(survive)
    for offset in range(UPLIFT_HORIZON_DAYS):
        visit_mult, buy_mult = calendar_rates(as_of + timedelta(days=offset))
        sessions = (hidden.visit_rates(day_index + offset)[signed_up] * visit_mult)[:, None]
        mult = coupon_mult if offset < COUPON_VALID_DAYS else coupon_mult[:, :1]
        survive *= 1 - hazard  # the day's churn draw comes before its visits
        no_buy = np.exp(-sessions * np.minimum(intent * buy_mult * mult, 0.95))
        p_buy += survive * (1 - no_buy)
        survive *= no_buy
    columns = {"user_id": hidden.user_id[signed_up], "is_alive": alive, "p_buy_7d_control": p_buy[:, 0]}
    columns |= {f"p_buy_7d_{code}": p_buy[:, i] for i, code in enumerate(codes, start=1)}
    columns["expected_order_value"] = hidden.order_value[signed_up]
    return columns


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
    deliveries: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Advance the shop one day; return (events, coupon sends) for that day.

    `deliveries` (user_id, coupon_code) are the pipeline's coupons for the day (see read_deliveries):
    given after the day's campaign exactly like a campaign coupon, but not part of the sends export.
    """
    day = spec.start + timedelta(days=day_index)
    rng = np.random.default_rng([spec.seed, day.toordinal()])
    n = len(traits)
    signed_up = traits["signup_day"].to_numpy() <= day_index
    state.churned |= signed_up & (rng.random(n) < traits["churn_hazard"].to_numpy())
    alive = signed_up & ~state.churned

    sends = _run_campaign(spec, day_index, day, users, signed_up, state, rng)
    if deliveries is not None and len(deliveries):
        rows = deliveries["user_id"].to_numpy() - 1
        state.coupon_until[rows] = day_index + COUPON_VALID_DAYS - 1
        state.coupon_code[rows] = deliveries["coupon_code"].to_numpy()
    strengths = coupon_strengths(spec)

    visit_mult, buy_mult = calendar_rates(day)
    n_sessions = rng.poisson(visit_rates(traits, day_index) * visit_mult) * alive
    session_user = np.repeat(np.arange(n), n_sessions)
    s = len(session_user)
    has_coupon = state.coupon_until[session_user] >= day_index
    coupon_mult = np.where(
        has_coupon,
        traits["coupon_effect"].to_numpy()[session_user]
        * np.array([strengths.get(c, 1.0) for c in state.coupon_code[session_user]]),
        1.0,
    )
    p_buy = np.minimum(traits["purchase_intent"].to_numpy()[session_user] * buy_mult * coupon_mult, 0.95)
    buys = rng.random(s) < p_buy
    # Intent shows before it converts: keen shoppers browse deeper and cart more.
    session_intent = traits["purchase_intent"].to_numpy()[session_user]
    # Price-sensitive shoppers who do not buy cart more and take more out again: waiting for a discount.
    session_sensitivity = traits["price_sensitivity"].to_numpy()[session_user]
    n_views = 1 + rng.poisson(BASE_EXTRA_VIEWS + EXTRA_VIEWS_PER_INTENT * session_intent)

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
    browse = BROWSE_CART_RATE
    cart_rate = np.minimum(
        browse["base"] + browse["per_intent"] * session_intent + browse["per_sensitivity"] * session_sensitivity,
        browse["cap"],
    )[view_session]
    carted = rng.random(len(view_session)) < np.where(buys[view_session], BUYING_CART_RATE, cart_rate)
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

    cart_rows = np.flatnonzero(carted)
    remove_rate = (REMOVE_RATE["base"] + REMOVE_RATE["per_sensitivity"] * session_sensitivity)[view_session[cart_rows]]
    removed = cart_rows[(~buys[view_session[cart_rows]]) & (rng.random(len(cart_rows)) < remove_rate)]
    bought = cart_rows[buys[view_session[cart_rows]]]
    bought_session = view_session[bought]
    quantity = np.minimum(rng.integers(1, 4, len(bought)) * (rng.random(len(bought)) < 0.3) + 1, 3)
    used_coupon = has_coupon[bought_session]
    parts = {
        "view": (view_session, view_at, product_row),
        "cart": (view_session[cart_rows], view_at[cart_rows] + 10, product_row[cart_rows]),
        "remove_from_cart": (view_session[removed], view_at[removed] + 20, product_row[removed]),
        "purchase": (
            bought_session,
            start_second[bought_session] + 45 * n_views[bought_session] + 60,
            product_row[bought],
        ),
    }
    purchases = {
        "quantity": quantity,
        "order_id": order_ids[bought_session],
        "coupon_code": np.where(used_coupon, state.coupon_code[session_user[bought_session]], None),
    }
    events = _day_events(day, stamp, parts, purchases, session_user, session_ids, products)
    # A redeemed coupon is spent.
    state.coupon_until[np.unique(session_user[bought_session][used_coupon])] = -1
    return events, sends


def _day_events(day, stamp, parts, purchases, session_user, session_ids, products) -> pd.DataFrame:
    """One frame of the day's events, ordered by time, then event type, then as listed in `parts`.

    `parts` maps each event type to (session, second of the day, product row) arrays; `purchases` holds
    the purchase rows' quantity, order_id and coupon_code (the last part). Built from arrays in one go:
    a frame per event type and a pandas sort cost more than the rest of the simulated day.
    """
    names = list(parts)
    sizes = [len(part[0]) for part in parts.values()]
    session = np.concatenate([part[0] for part in parts.values()])
    seconds = np.minimum(np.concatenate([part[1] for part in parts.values()]), 86_399)
    product_row = np.concatenate([part[2] for part in parts.values()])
    type_rank = np.repeat(np.argsort(np.argsort(names)), sizes)  # event types sort by name
    order = np.argsort(seconds * len(names) + type_rank, kind="stable")
    bought = slice(len(session) - sizes[-1], len(session))
    quantity = np.ones(len(session), dtype="int64")
    quantity[bought] = purchases["quantity"]
    optional = {}
    for column in ("order_id", "coupon_code"):
        values = np.full(len(session), None, dtype=object)
        values[bought] = purchases[column]
        optional[column] = pd.Series(values[order], dtype="object")
    session, product_row = session[order], product_row[order]
    return pd.DataFrame(
        {
            "event_id": [f"e{stamp}-{i}" for i in range(len(session))],
            "event_at": pd.Timestamp(day) + pd.to_timedelta(seconds[order], unit="s"),
            "event_type": np.repeat(np.array(names, dtype=object), sizes)[order],
            "user_id": (session_user[session] + 1).astype("int64"),
            "product_id": products["product_id"].to_numpy()[product_row],
            "category": products["category"].to_numpy()[product_row],
            "price": products["price"].to_numpy()[product_row],
            "quantity": quantity[order],
            "session_id": session_ids[session],
            **optional,
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


def read_deliveries(path: Path, signed_up: np.ndarray) -> pd.DataFrame:
    """The coupons the shop delivers from the pipeline's send list: (user_id, coupon_code), one per user.

    Rows with is_holdout False and a coupon code; rows for users the shop does not know (or who have not
    signed up yet) are dropped, and a user listed twice gets the last row's code.
    """
    targets = pd.read_parquet(path)
    missing = {"user_id", "coupon_code", "is_holdout"} - set(targets.columns)
    if missing:
        raise ValueError(f"{path}: the send list lacks the column(s) {sorted(missing)}")
    user_id = pd.to_numeric(targets["user_id"], errors="coerce")
    known = user_id.between(1, len(signed_up))
    known &= pd.Series(signed_up[(user_id.where(known, 1) - 1).astype("int64")], index=targets.index)
    has_code = targets["coupon_code"].notna() & targets["coupon_code"].astype(str).ne("")
    send = (targets["is_holdout"].eq(False).fillna(False).astype(bool) & has_code & known).to_numpy()
    delivered = pd.DataFrame(
        {"user_id": user_id[send].astype("int64"), "coupon_code": targets.loc[send, "coupon_code"].astype(str)}
    )
    return delivered.drop_duplicates("user_id", keep="last").reset_index(drop=True)


def _write_truth(columns: dict[str, np.ndarray], path: Path) -> None:
    """Write a daily truth table atomically, like write_parquet_atomic, without dictionary encoding.

    The columns are ids and probabilities that a dictionary does not shrink; trying one cost more
    than everything else the truth adds to a simulated day.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        pq.write_table(pa.table(columns), tmp, use_dictionary=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class Checkpoint:
    """The state after the last simulated day: enough to simulate the next day as one long run would."""

    spec_json: str
    day_index: int  # the last simulated day
    state: ShopState
    last_visit: np.ndarray


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write the checkpoint to a temporary file beside `path`, then rename it over: old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    state = checkpoint.state
    # Small and quick to write every day: codes as indices into their distinct values, days as int32.
    code_index, code_values = pd.factorize(state.coupon_code, use_na_sentinel=False)
    try:
        with open(tmp, "wb") as handle:  # a handle: np.savez would add .npz to a file name
            np.savez(
                handle,
                spec_json=np.array(checkpoint.spec_json),
                day_index=np.array(checkpoint.day_index),
                churned=state.churned,
                coupon_until=state.coupon_until.astype(np.int32),
                coupon_code_index=code_index.astype(np.int32),
                coupon_code_values=code_values.astype(str),
                next_order=np.array(state.next_order),
                next_session=np.array(state.next_session),
                last_visit=checkpoint.last_visit.astype(np.int32),
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The saved checkpoint, or None if there is none."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as saved:
        return Checkpoint(
            spec_json=str(saved["spec_json"]),
            day_index=int(saved["day_index"]),
            state=ShopState(
                churned=saved["churned"].copy(),
                coupon_until=saved["coupon_until"].astype(np.int64),
                coupon_code=saved["coupon_code_values"].astype(object)[saved["coupon_code_index"]],
                next_order=int(saved["next_order"]),
                next_session=int(saved["next_session"]),
            ),
            last_visit=saved["last_visit"].astype(np.int64),
        )


def _resumable(spec: ShopSpec) -> Checkpoint | None:
    """The saved checkpoint if it is this spec's and the inbox still has the day it stopped after."""
    cfg = settings()
    checkpoint = load_checkpoint(cfg.truth_dir / CHECKPOINT_FILE)
    if checkpoint is None or checkpoint.spec_json != spec.to_json():
        return None
    last_day = spec.start + timedelta(days=checkpoint.day_index)
    if not (cfg.inbox_dir / "events" / f"events_{last_day}.parquet").exists():
        return None
    return checkpoint


def simulate(spec: ShopSpec, through: date | None = None) -> dict[str, float | int | str | None]:
    """Write the shop's exports for every day up to `through` (default: the spec's last day).

    Continues after the last simulated day when `truth/shop_state.npz` holds this spec's state (and
    does nothing when it already covers `through`); otherwise starts from day 0. `through` may go past
    the spec's `days`: nobody signs up after them, the shop goes on. Each day also writes its truth
    (probabilities, coupon_effects, deliveries when the pipeline left a send list) and the checkpoint.

    A run from day 0 returns the headline rates: the 30-day purchase rate among recently active users
    and the oracle ROC AUC on the newest as-of date whose label window has closed. A resumed run
    returns which days it simulated.
    """
    from sklearn.metrics import roc_auc_score

    cfg = settings()
    through = through or spec.end
    n_days = (through - spec.start).days + 1
    if n_days < 1:
        raise ValueError(f"--through {through} is before the shop starts on {spec.start}")
    inbox, truth = cfg.inbox_dir, cfg.truth_dir
    checkpoint = _resumable(spec)
    if checkpoint is not None and checkpoint.day_index >= n_days - 1:
        covered = spec.start + timedelta(days=checkpoint.day_index)
        return {"days_simulated": 0, "first_day": None, "last_day": None, "simulated_through": str(covered)}
    base_rng = np.random.default_rng([spec.seed, 0])
    products = make_products(base_rng)
    users, traits = make_users(spec, base_rng)
    strengths = coupon_strengths(spec)
    if checkpoint is None:
        first_day = 0
        state = ShopState(
            churned=np.zeros(spec.users, bool),
            coupon_until=np.full(spec.users, -1),
            coupon_code=np.full(spec.users, "", dtype=object),
        )
        last_visit = np.full(spec.users, -(10**6))
    else:
        first_day, state, last_visit = checkpoint.day_index + 1, checkpoint.state, checkpoint.last_visit
    reference = n_days - 1 - LABEL_HORIZON_DAYS  # newest day index whose label window has closed
    ref_active = ref_bought = ref_truth = None
    signup_day = traits["signup_day"].to_numpy()
    hidden = Hidden.of(traits, products)
    for day_index in progress(range(first_day, n_days), "simulating days", total=n_days - first_day):
        day = spec.start + timedelta(days=day_index)
        signed_up = signup_day <= day_index
        probs = _write_day_truth(hidden, state, signed_up, day, day_index, strengths, truth)
        if day_index == reference:
            ref_active = day_index - last_visit <= LABEL_HORIZON_DAYS
            ref_bought = np.zeros(spec.users, bool)
            ref_truth = probs["p_purchase_30d"].to_numpy()
        targets_file = cfg.targets_dir / f"as_of_date={day}" / "part-0.parquet"
        deliveries = read_deliveries(targets_file, signed_up) if targets_file.exists() else None
        events, sends = simulate_day(spec, day_index, users, traits, products, state, deliveries)
        visited = events["user_id"].unique() - 1
        last_visit[visited] = day_index
        if ref_bought is not None and day_index < reference + LABEL_HORIZON_DAYS:
            ref_bought[events.loc[events["event_type"] == "purchase", "user_id"].unique() - 1] = True
        write_parquet_atomic(events, inbox / "events" / f"events_{day}.parquet", schema=EXPORT_SCHEMA)
        if len(sends):
            write_parquet_atomic(sends, inbox / "coupon_sends" / f"coupon_sends_{day}.parquet")
        if deliveries is not None:
            write_parquet_atomic(deliveries, truth / "deliveries" / f"as_of_date={day}" / "part-0.parquet")
        save_checkpoint(truth / CHECKPOINT_FILE, Checkpoint(spec.to_json(), day_index, state, last_visit))
    # The truth as of the morning after the last simulated day: the pipeline scores and targets that day.
    next_day = spec.start + timedelta(days=n_days)
    _write_day_truth(hidden, state, signup_day <= n_days, next_day, n_days, strengths, truth)
    visible = users[signup_day < n_days]
    write_parquet_atomic(visible, inbox / "users.parquet")
    write_parquet_atomic(products, inbox / "products.parquet")
    write_parquet_atomic(traits, truth / "user_traits.parquet")
    (inbox / "shop_spec.json").write_text(spec.to_json())
    if first_day > 0:
        return {
            "days_simulated": n_days - first_day,
            "first_day": str(spec.start + timedelta(days=first_day)),
            "last_day": str(through),
            "simulated_through": str(through),
        }
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


def _write_day_truth(hidden, state, signed_up, day: date, day_index: int, strengths, truth: Path) -> pd.DataFrame:
    """Write the truth as of the morning of `day` (before its events): label probabilities and coupon effects."""
    alive = signed_up & ~state.churned
    probs = true_probabilities(hidden, alive, day, day_index)
    _write_truth(
        {name: probs[name].to_numpy()[signed_up] for name in probs},
        truth / "probabilities" / f"as_of_date={day}" / "part-0.parquet",
    )
    _write_truth(
        _coupon_effect_columns(hidden, alive, day, day_index, strengths),
        truth / "coupon_effects" / f"as_of_date={day}" / "part-0.parquet",
    )
    return probs


def extend_shop(through: date) -> dict[str, float | int | str | None]:
    """Simulate the shop recorded in the inbox (or the default one) up to `through`, from its checkpoint.

    Only the days after the last simulated one are simulated, and none after `through` (which may be
    past the spec's last day); a shop without a checkpoint is simulated from day 0.
    """
    cfg = settings()
    spec_file = cfg.inbox_dir / "shop_spec.json"
    checkpoint = load_checkpoint(cfg.truth_dir / CHECKPOINT_FILE)
    if spec_file.exists():
        spec = ShopSpec.from_json(spec_file.read_text())
    elif checkpoint is not None:  # a first run stopped before it wrote the spec file
        spec = ShopSpec.from_json(checkpoint.spec_json)
    else:
        spec = ShopSpec(seed=cfg.seed)
    if through < spec.start:
        raise ValueError(f"cannot simulate {through}: the simulated shop starts on {spec.start}")
    return simulate(spec, through=through)
