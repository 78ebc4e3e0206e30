"""Qini, AUUC and uplift at the top on data whose answer is known."""

from __future__ import annotations

import numpy as np

from ml.uplift.metrics import bootstrap_uplift_metrics, qini_coefficient, uplift_at, uplift_by_decile


def randomised(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    effect = rng.uniform(-0.05, 0.25, n)
    treated = rng.random(n) < 0.5
    outcome = rng.random(n) < 0.1 + effect * treated
    return effect, treated, outcome.astype(float)


def test_true_effect_ranks_best_and_random_scores_near_zero():
    effect, treated, outcome = randomised()
    rng = np.random.default_rng(1)
    assert qini_coefficient(effect, treated, outcome) > 0.01
    assert abs(qini_coefficient(rng.random(len(effect)), treated, outcome)) < 0.005
    assert qini_coefficient(-effect, treated, outcome) < 0


def test_uplift_at_the_top_recovers_the_planted_effect():
    effect, treated, outcome = randomised()
    top = np.sort(effect)[::-1][: len(effect) // 10].mean()
    assert abs(uplift_at(effect, treated, outcome, 0.1) - top) < 0.03


def test_bootstrap_interval_contains_the_point_and_deciles_fall():
    effect, treated, outcome = randomised(n=5_000)
    metrics = bootstrap_uplift_metrics(effect, treated, outcome, n_boot=50)
    assert metrics["qini_ci_low"] <= metrics["qini"] <= metrics["qini_ci_high"]
    deciles = uplift_by_decile(effect, treated, outcome)
    assert deciles["observed_uplift"].iloc[0] > deciles["observed_uplift"].iloc[-1]
    assert deciles["predicted_uplift"].is_monotonic_decreasing
