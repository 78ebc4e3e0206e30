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
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.config import LABEL_HORIZON_DAYS, settings
from ml.errors import UserFacingError
from ml.progress import progress
from ml.sim.behaviour import Hidden, coupon_effect_columns, true_probabilities
from ml.sim.day import ShopState, read_deliveries, simulate_day
from ml.sim.shop import SHIFTS, ShopSpec, coupon_strengths, make_products, make_users
from ml.storage import EXPORT_SCHEMA, temporary_path, write_parquet_atomic, write_text_atomic

CHECKPOINT_FILE = "shop_state.npz"


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
            churned=np.zeros(len(users), bool),
            coupon_until=np.full(len(users), -1),
            coupon_code=np.full(len(users), "", dtype=object),
        )
        last_visit = np.full(len(users), -(10**6))
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
            ref_bought = np.zeros(len(users), bool)
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
    if spec.shift:  # the drift injected, for whoever measures how soon the monitor sees it
        cohort = {"first_user_id": int(spec.users + 1), "users": int(len(users) - spec.users)}
        shift = {"shift": spec.shift, "shift_from": str(spec.shift_from), **SHIFTS[spec.shift], **cohort}
        write_text_atomic(json.dumps(shift), truth / "shift.json")
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
        coupon_effect_columns(hidden, alive, day, day_index, strengths),
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
    elif (cfg.inbox_dir / "users.parquet").exists() or any((cfg.inbox_dir / "events").glob("events_*")):
        # Exports the simulator did not write: a shop's own. Simulating would overwrite them and its users.
        raise UserFacingError(
            f"{cfg.inbox_dir} holds exports the demo shop did not write (no shop_spec.json): "
            "it never simulates into a shop's own inbox; point SHOP_DATA_DIR at a folder of its own"
        )
    else:
        spec = ShopSpec(seed=cfg.seed)
    if through < spec.start:
        raise ValueError(f"cannot simulate {through}: the simulated shop starts on {spec.start}")
    return simulate(spec, through=through)
