"""One simulated day: sessions, carts, purchases, the shop's campaigns and the coupons the pipeline sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ml.sim.behaviour import BASE_EXTRA_VIEWS, BUYING_CART_RATE, EXTRA_VIEWS_PER_INTENT, calendar_rates, visit_rates
from ml.sim.shop import CAMPAIGN_COUPONS, CAMPAIGN_EVERY_DAYS, CATEGORIES, COUPON_VALID_DAYS, ShopSpec, coupon_strengths

# A session that does not buy carts each view with probability base + per_intent x intent +
# per_sensitivity x price_sensitivity (capped), and takes each carted item out again with probability
# base + per_sensitivity x price_sensitivity: price-sensitive shoppers park items waiting for a discount.
BROWSE_CART_RATE = {"base": 0.02, "per_intent": 1.5, "per_sensitivity": 0.2, "cap": 0.6}


REMOVE_RATE = {"base": 0.05, "per_sensitivity": 0.5}


# A session opens with a search with probability base + per_intent x intent (capped); a session that does not buy
# saves each viewed product as a favourite with probability base + per_intent x intent + per_sensitivity x
# price_sensitivity: keen shoppers search, and price-sensitive ones keep a wish list while they wait for a discount.
# Drawn from their own generator, (seed, day, 1): the views, carts and purchases of a shop are the same with them.
SEARCH_RATE = {"base": 0.15, "per_intent": 6.0, "cap": 0.9}
FAVOURITE_RATE = {"base": 0.01, "per_intent": 0.5, "per_sensitivity": 0.12}


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
    searches, favourites = _searches_and_favourites(
        np.random.default_rng([spec.seed, day.toordinal(), 1]), session_intent, session_sensitivity, buys, view_session
    )
    parts = {
        "view": (view_session, view_at, product_row),
        # A search has no product (row -1); it opens the session, in the second of its first view.
        "search": (searches, start_second[searches], np.full(len(searches), -1)),
        "favourite": (view_session[favourites], view_at[favourites] + 5, product_row[favourites]),
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


def _searches_and_favourites(rng, intent, sensitivity, buys, view_session) -> tuple[np.ndarray, np.ndarray]:
    """(the sessions that search, the view rows saved as favourites), from `rng` alone."""
    search = np.minimum(SEARCH_RATE["base"] + SEARCH_RATE["per_intent"] * intent, SEARCH_RATE["cap"])
    searches = np.flatnonzero(rng.random(len(intent)) < search)
    rate = FAVOURITE_RATE
    favourite = (rate["base"] + rate["per_intent"] * intent + rate["per_sensitivity"] * sensitivity)[view_session]
    favourites = np.flatnonzero((rng.random(len(view_session)) < favourite) & ~buys[view_session])
    return searches, favourites


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
    no_product = product_row < 0  # a search

    def of_product(column: str, missing) -> np.ndarray:
        values = products[column].to_numpy()[product_row]
        return np.where(no_product, missing, values) if no_product.any() else values

    return pd.DataFrame(
        {
            "event_id": [f"e{stamp}-{i}" for i in range(len(session))],
            "event_at": pd.Timestamp(day) + pd.to_timedelta(seconds[order], unit="s"),
            "event_type": np.repeat(np.array(names, dtype=object), sizes)[order],
            "user_id": (session_user[session] + 1).astype("int64"),
            "product_id": pd.Series(of_product("product_id", -1), dtype="Int64").mask(no_product),
            "category": of_product("category", None),
            "price": of_product("price", np.nan),
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
