"""Behavioural clusters: k-means on scaled behaviour features, with ids that stay put from day to day.

The lifecycle segments are hand-set rules; the clusters are what the behaviour itself groups into. Each
scoring day (ml.propensity.score writes them with the scores):

- **Features** (`CLUSTER_FEATURES`): recency, visit and purchase frequency, spend, order value, cart behaviour
  and breadth, each log1p-compressed (counts and money are heavy-tailed: one big spender would otherwise be a
  cluster of their own) and standardised.
- **k** is chosen by the mean silhouette on a sample (`SAMPLE_USERS`) over k = 3..8. A day keeps the previous
  day's k unless another k's silhouette beats it by more than `K_SWITCH_MARGIN`, so clusters do not split and
  merge on noise.
- **Stable ids**: the day's centroids are matched to the previous day's (re-expressed in today's scaling) by
  the assignment that minimises the total distance (Hungarian); a cluster with no match gets a new id. A rerun
  of a day reads the same previous day and gives the same ids.
- **Profiles**: per cluster its size, the mean of every feature and a label from the two features that set it
  apart most (in standard deviations of the sampled users), e.g. "frequent buyers, high spend".

The scaling, the fill values and k-means are fitted on the sample (`fit_clusters`) and then assign every user,
batch by batch where need be (on Spark, in each executor: ml.propensity.spark_scoring); the profiles add up each
batch's sums. So a day's cost grows with users only through the assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml.config import settings

# Feature -> how a cluster far above / below all users on it is described.
CLUSTER_FEATURES = {
    "days_since_last_activity": ("long inactive", "recently active"),
    "count_sessions_90d": ("many visits", "few visits"),
    "count_active_days_90d": ("many active days", "few active days"),
    "count_purchases_90d": ("frequent buyers", "rare buyers"),
    "sum_revenue_90d": ("high spend", "low spend"),
    "avg_order_value_lifetime": ("large orders", "small orders"),
    "cart_abandonment_rate_90d": ("abandon carts", "finish carts"),
    "remove_to_cart_rate_90d": ("take items out of the cart", "keep carted items"),
    "count_distinct_categories_90d": ("browse widely", "browse narrowly"),
    "tenure_days": ("long-standing", "new"),
}
K_RANGE = range(3, 9)
K_SWITCH_MARGIN = 0.02
SAMPLE_USERS = 5000
# Never active (no activity date): counted as a year since, the longest the features look back.
RECENCY_CAP_DAYS = 365


# Rates of something a user may never have done (no cart, no removal): missing is neither high nor low.
NEUTRAL_WHEN_MISSING = ("cart_abandonment_rate_90d", "remove_to_cart_rate_90d")


def fill_values(sample: pd.DataFrame) -> dict[str, float]:
    """What a missing rate is read as: the sampled users' median (so "never carted" does not read as "finishes
    carts")."""
    values = {}
    for rate in NEUTRAL_WHEN_MISSING:
        column = pd.to_numeric(sample[rate], errors="coerce")
        values[rate] = float(column.median()) if column.notna().any() else 0.0
    return values


def behaviour_matrix(population: pd.DataFrame, fills: dict[str, float]) -> np.ndarray:
    """The users' clustering features before scaling: log1p of each. A missing count or amount is none of it, a
    missing recency a year, a missing rate its fill value (`fill_values`)."""
    frame = pd.DataFrame({c: pd.to_numeric(population[c], errors="coerce") for c in CLUSTER_FEATURES})
    frame["days_since_last_activity"] = frame["days_since_last_activity"].fillna(RECENCY_CAP_DAYS)
    frame["days_since_last_activity"] = frame["days_since_last_activity"].clip(upper=RECENCY_CAP_DAYS)
    for rate, value in fills.items():
        frame[rate] = frame[rate].fillna(value)
    return np.log1p(frame.fillna(0.0).clip(lower=0.0).to_numpy(float))


def choose_k(scaled: np.ndarray, previous_k: int | None, seed: int) -> tuple[int, dict[int, float]]:
    """k by the mean silhouette over K_RANGE on `scaled` (a sample); the previous k unless clearly beaten."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    silhouettes = {}
    for k in K_RANGE:
        if k >= len(scaled):
            break
        labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(scaled)
        if len(set(labels)) > 1:
            silhouettes[k] = float(silhouette_score(scaled, labels, random_state=seed))
    if not silhouettes:
        return 1, silhouettes
    best = max(silhouettes, key=lambda k: (silhouettes[k], -k))
    if previous_k in silhouettes and silhouettes[best] - silhouettes[previous_k] <= K_SWITCH_MARGIN:
        return previous_k, silhouettes
    return best, silhouettes


def previous_profiles(as_of: date) -> pd.DataFrame | None:
    """The newest cluster profiles written for a date before `as_of` (None before the first)."""
    folders = sorted(settings().cluster_profiles_dir.glob("as_of_date=*"))
    earlier = [folder for folder in folders if folder.name < f"as_of_date={as_of}" and any(folder.glob("*.parquet"))]
    return pd.read_parquet(earlier[-1]) if earlier else None


def match_ids(
    centroids: np.ndarray, previous: np.ndarray, previous_ids: list[int], highest_issued: int = 0
) -> list[int]:
    """An id for each centroid: its previous cluster's by the minimum-distance matching, else a new one (above
    every id ever issued, so a retired id never comes back for another group)."""
    from scipy.optimize import linear_sum_assignment

    ids = [-1] * len(centroids)
    if len(previous):
        distance = np.linalg.norm(centroids[:, None, :] - previous[None, :, :], axis=2)
        for row, col in zip(*linear_sum_assignment(distance), strict=True):
            ids[row] = int(previous_ids[col])
    next_id = max([highest_issued, *previous_ids]) + 1
    for row in range(len(ids)):
        if ids[row] < 0:
            ids[row], next_id = next_id, next_id + 1
    return ids


@dataclass
class DayClusters:
    """A day's clustering, fitted on a sample of its users: what assigns every other user, on any machine."""

    fills: dict[str, float]
    scaler: Any
    model: Any
    ids: np.ndarray  # the stable cluster id of each of the model's clusters
    silhouette: float | None
    highest_issued: int

    def assign(self, population: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(each user's cluster id, their clustering features before scaling)."""
        raw = behaviour_matrix(population, self.fills)
        labels = self.model.predict(self.scaler.transform(raw)) if len(raw) else np.empty(0, dtype=int)
        return self.ids[labels], raw


def fit_clusters(sample: pd.DataFrame, as_of: date) -> DayClusters:
    """Scaling, k, centroids and their stable ids from a sample of the day's users (at most SAMPLE_USERS)."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    seed = settings().seed
    fills = fill_values(sample)
    raw = behaviour_matrix(sample, fills)
    scaler = StandardScaler().fit(raw)
    scaled = scaler.transform(raw)
    before = previous_profiles(as_of)
    k, silhouettes = choose_k(scaled, None if before is None else len(before), seed)
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(scaled)
    old = np.empty((0, scaled.shape[1]))
    old_ids: list[int] = []
    highest = 0
    if before is not None:
        old = scaler.transform(np.log1p(before[[f"mean_{c}" for c in CLUSTER_FEATURES]].to_numpy(float)))
        old_ids = before["cluster_id"].astype(int).tolist()
        highest = int(before["highest_cluster_id_issued"].max()) if "highest_cluster_id_issued" in before else 0
    ids = np.asarray(match_ids(model.cluster_centers_, old, old_ids, highest))
    return DayClusters(fills, scaler, model, ids, silhouettes.get(k), max(highest, *ids.tolist()))


def sample_keys(user_ids: pd.Series, seed: int) -> np.ndarray:
    """A pseudo-random key per user from their id and the project's seed (SplitMix64's mixer), non-negative int64.
    The users with the smallest keys are the clustering sample: the same users whichever engine or batch."""
    with np.errstate(over="ignore"):
        x = user_ids.to_numpy(dtype="int64").astype(np.uint64)
        x = x + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(1)).astype("int64")


def cluster_sample(population: pd.DataFrame) -> pd.DataFrame:
    """The users k-means is fitted on: the SAMPLE_USERS with the smallest `sample_keys`, in key order."""
    keys = sample_keys(population["user_id"], settings().seed)
    return population.iloc[np.lexsort((population["user_id"].to_numpy(), keys))[:SAMPLE_USERS]]


def cluster_day(population: pd.DataFrame, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(user_id -> cluster_id, one profile row per cluster) for the day's scored users."""
    clusters = fit_clusters(cluster_sample(population), as_of)
    cluster_ids, raw = clusters.assign(population)
    assigned = pd.DataFrame({"user_id": population["user_id"].astype("int64").to_numpy(), "cluster_id": cluster_ids})
    return assigned, profiles(clusters, cluster_sums(cluster_ids, raw))


def cluster_sums(cluster_ids: np.ndarray, raw: np.ndarray) -> pd.DataFrame:
    """Per cluster: its users and the sum of each clustering feature before scaling (what `profiles` needs; the
    sums of several batches of users add up)."""
    frame = pd.DataFrame(raw, columns=list(CLUSTER_FEATURES))
    frame.insert(0, "cluster_id", cluster_ids.astype("int64"))
    frame.insert(1, "n_users", 1)
    return frame.groupby("cluster_id", as_index=False).sum()


def profiles(clusters: DayClusters, sums: pd.DataFrame) -> pd.DataFrame:
    """One row per cluster: size, share, each feature's mean (in its own units) and a readable label, from one row
    of sums per cluster (`cluster_sums`, or Spark's aggregate of the same)."""
    names = list(CLUSTER_FEATURES)
    sums = sums.sort_values("cluster_id")
    total = int(sums["n_users"].sum())
    rows = []
    for _, cluster in sums.iterrows():
        n = int(cluster["n_users"])
        raw_mean = cluster[names].to_numpy(float) / n
        z = clusters.scaler.transform(raw_mean[None, :])[0]  # scaling is linear: the mean of the scaled values
        top = np.argsort(-np.abs(z))[:2]
        label = ", ".join(CLUSTER_FEATURES[names[i]][0 if z[i] > 0 else 1] for i in top)
        label = label if len(sums) > 1 else "all users"
        row = {
            "cluster_id": int(cluster["cluster_id"]),
            "cluster_label": label,
            "n_users": n,
            "share_of_users": n / total,
            "silhouette": clusters.silhouette,
        }
        # Means of the log1p values, back in the feature's units: a geometric-style mean, robust to the few
        # very large spenders that an arithmetic mean would follow.
        row.update({f"mean_{name}": float(np.expm1(raw_mean[i])) for i, name in enumerate(names)})
        rows.append(row)
    profile = pd.DataFrame(rows)
    profile["highest_cluster_id_issued"] = clusters.highest_issued
    return profile
