"""Per-user reasons of the forest and the network add up to the model's own log-odds, on small fitted models."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return np.log(p / (1 - p))


def _data(missing: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(size=600) > 0.3).astype(int)
    if missing:
        x[rng.random(x.shape) < 0.2] = np.nan  # the forest splits on missing values, as in the pipeline
    return x, y


def test_a_forests_path_attributions_add_up_to_its_log_odds_with_missing_values():
    from ml.propensity.reasons import forest_contributions

    x, y = _data(missing=True)
    forest = RandomForestClassifier(n_estimators=25, min_samples_leaf=5, max_samples=0.5, random_state=0).fit(x, y)
    per_column, base = forest_contributions(forest, x, batch=128)  # several batches
    margin = _logit(forest.predict_proba(x)[:, 1])
    assert np.abs(per_column.sum(axis=1) + base - margin).max() < 1e-8
    assert np.unique(base).size == 1 and abs(base[0]) < 3
    # The informative columns carry the most: x0, then the pair x1 * x2; x3..x5 are noise.
    mean_size = np.abs(per_column).mean(axis=0)
    assert mean_size[0] == mean_size.max() and mean_size[3:].max() < mean_size[0] / 2


@pytest.mark.parametrize("hidden", [(16,), (8, 4)])
def test_a_networks_integrated_gradients_add_up_to_its_log_odds(hidden):
    from ml.propensity.reasons import network_contributions

    x, y = _data(missing=False)
    network = MLPClassifier(hidden_layer_sizes=hidden, max_iter=400, random_state=0).fit(x, y)
    per_column, base = network_contributions(network, x)
    margin = _logit(network.predict_proba(x)[:, 1])
    assert np.abs(per_column.sum(axis=1) + base - margin).max() < 1e-8
    # The all-zero input's log-odds is the base; a row at zero has nothing to explain.
    at_zero = _logit(network.predict_proba(np.zeros((1, x.shape[1])))[:, 1])[0]
    assert np.allclose(base, at_zero)
    zero_row, _ = network_contributions(network, np.zeros((1, x.shape[1])))
    assert np.allclose(zero_row, 0)
    assert np.abs(per_column[:, 0]).mean() > np.abs(per_column[:, 3:]).mean(axis=0).max()


def test_a_network_without_a_relu_hidden_layer_is_refused():
    from ml.propensity.reasons import network_contributions

    x, y = _data(missing=False)
    network = MLPClassifier(hidden_layer_sizes=(4,), activation="tanh", max_iter=50, random_state=0).fit(x, y)
    with pytest.raises(ValueError, match="ReLU network"):
        network_contributions(network, x)
