"""Behavioural clusters: k by silhouette, ids kept from day to day, written with the scores, read by the marts."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from ml.clusters.behaviour import K_SWITCH_MARGIN, choose_k, match_ids
from tests.checksums import query


def test_ids_follow_the_nearest_previous_cluster_and_a_new_cluster_gets_a_new_id():
    previous = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]])
    today = np.array([[10.2, 0.1], [0.1, -0.2], [5.1, 4.8], [20.0, 20.0]])
    assert match_ids(today, previous, [4, 7, 9]) == [9, 4, 7, 10]
    assert match_ids(today[:2], np.empty((0, 2)), []) == [1, 2]
    # An id retired when k shrank is never issued again to another group.
    assert match_ids(today, previous, [4, 7, 9], highest_issued=12) == [9, 4, 7, 13]


def test_k_is_the_best_silhouette_and_the_previous_k_stays_unless_clearly_beaten():
    rng = np.random.default_rng(3)
    blobs = np.vstack([rng.normal(center, 0.3, (200, 2)) for center in ([0, 0], [6, 0], [0, 6], [6, 6])])
    k, silhouettes = choose_k(blobs, None, seed=1)
    assert k == 4 and silhouettes[4] == max(silhouettes.values())
    # A previous k is kept when its silhouette is within the margin of the best, else the best replaces it.
    for previous in silhouettes:
        kept = silhouettes[4] - silhouettes[previous] <= K_SWITCH_MARGIN
        assert choose_k(blobs, previous, seed=1)[0] == (previous if kept else 4)
    assert choose_k(blobs[:2], None, seed=1)[0] == 1  # too few users to split


def test_two_scored_days_keep_their_cluster_ids_a_rerun_agrees_and_the_marts_profile_them(trained_shop, shop_copy):
    from ml.config import settings
    from ml.propensity.score import score_day
    from ml.targeting.build import build_segments

    shop = shop_copy(trained_shop)
    second = shop.remaining_days[0]
    first = second - timedelta(days=1)
    score_day(first)
    score_day(second)
    cfg = settings()

    def read(folder, day):
        return pd.read_parquet(folder / f"as_of_date={day}" / "part-0.parquet")

    profiles = {day: read(cfg.cluster_profiles_dir, day) for day in (first, second)}
    assigned = {day: read(cfg.clusters_dir, day).set_index("user_id")["cluster_id"] for day in (first, second)}
    assert 3 <= len(profiles[first]) <= 8
    assert profiles[first]["n_users"].sum() == len(assigned[first]) and assigned[first].index.is_unique
    # One day later most users are in the cluster with the same id.
    both = assigned[first].index.intersection(assigned[second].index)
    assert (assigned[first][both] == assigned[second][both]).mean() > 0.9
    assert set(profiles[second]["cluster_id"]) == set(profiles[first]["cluster_id"])
    # A rerun of the first day, now that the second exists, reads the day before it and gives the same clusters.
    score_day(first)
    pd.testing.assert_series_equal(read(cfg.clusters_dir, first).set_index("user_id")["cluster_id"], assigned[first])

    build_segments(second)
    marts = query(
        shop.warehouse,
        "select cluster_id, cluster_label, n_users, main_lifecycle_segment from cluster_profiles where as_of_date = ?",
        [second],
    )
    assert sorted(row[0] for row in marts) == sorted(profiles[second]["cluster_id"])
    assert all(label and segment for _, label, _, segment in marts)
    per_user = query(shop.warehouse, "select count(*) from user_clusters where as_of_date = ?", [second])
    assert per_user == [(len(assigned[second]),)]
