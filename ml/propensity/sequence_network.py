"""The sequence network: a GRU over each user's last 28 days of activity, joined to the tabular features.

Each day's four counts (sessions, views, carts, orders; ml.propensity.sequences) go through a gated recurrent
unit, oldest day first; its last state and the scaled tabular features (the logistic model's inputs) feed one
ReLU layer and the output unit. It is trained with JAX (gradients, Adam, early stopping on a tenth of its rows
held aside) and predicts with NumPy: a registered version loads and scores without JAX (only its per-user reasons,
integrated gradients, use it), and its weights are plain arrays (saved with skops, as every family).

Why JAX: of the libraries that differentiate a recurrent network, it is the smallest CPU install (jaxlib is one
wheel of about 340 MB unpacked, with no GPU libraries; PyTorch from the package index brings its CUDA libraries,
several GB) and compiles the 28 unrolled steps into one CPU program.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin

from ml.propensity.sequences import CHANNELS, SEQUENCE_COLUMNS, SEQUENCE_DAYS, is_sequence_column


def _forward(params: dict, static, sequence, xp, sigmoid):
    """The network's log-odds for each row; `xp` is numpy or jax.numpy (one definition for training and scoring)."""
    hidden = params["U"].shape[0]
    state = xp.zeros((sequence.shape[0], hidden), dtype=sequence.dtype)
    for day in range(sequence.shape[1]):
        gates_in = sequence[:, day, :] @ params["W"] + params["b"]
        gates_state = state @ params["U"]
        update = sigmoid(gates_in[:, :hidden] + gates_state[:, :hidden])
        reset = sigmoid(gates_in[:, hidden : 2 * hidden] + gates_state[:, hidden : 2 * hidden])
        candidate = xp.tanh(gates_in[:, 2 * hidden :] + reset * gates_state[:, 2 * hidden :])
        state = update * state + (1 - update) * candidate
    joined = xp.concatenate([state, static], axis=1)
    layer = xp.maximum(joined @ params["W1"] + params["b1"], 0)
    return (layer @ params["w2"])[:, 0] + params["b2"][0]


def _initial(n_static: int, hidden: int, dense: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def glorot(rows: int, cols: int) -> np.ndarray:
        limit = np.sqrt(6 / (rows + cols))
        return rng.uniform(-limit, limit, (rows, cols)).astype(np.float32)

    channels = len(CHANNELS)
    return {
        "W": glorot(channels, 3 * hidden),
        "U": glorot(hidden, 3 * hidden),
        "b": np.zeros(3 * hidden, np.float32),
        "W1": glorot(hidden + n_static, dense),
        "b1": np.zeros(dense, np.float32),
        "w2": glorot(dense, 1),
        "b2": np.zeros(1, np.float32),
    }


class SequenceNetwork(ClassifierMixin, BaseEstimator):
    """A GRU (`hidden_units`) over the `seq_` inputs plus one ReLU layer (`dense_units`) over its state and the
    other inputs; L2 penalty `alpha` on the weights, Adam at `learning_rate`, batches of `batch_size`, at most
    `max_epochs`, stopping after `patience` epochs without a better loss (log loss plus the penalty) on the
    held-aside tenth."""

    def __init__(
        self,
        hidden_units: int = 16,
        dense_units: int = 32,
        alpha: float = 1e-4,
        learning_rate: float = 3e-3,
        batch_size: int = 512,
        max_epochs: int = 30,
        patience: int = 3,
        seed: int = 0,
    ):
        self.hidden_units = hidden_units
        self.dense_units = dense_units
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed

    def _parts(self, x):
        """(tabular inputs, sequence as rows x days x channels) of a transformed input array (NumPy or JAX)."""
        sequence = x[:, self.sequence_index_].reshape(x.shape[0], SEQUENCE_DAYS, len(CHANNELS))
        return x[:, self.static_index_], sequence

    def _split(self, x) -> tuple[np.ndarray, np.ndarray]:
        """`_parts` of an input matrix or frame, as float32."""
        return self._parts(np.asarray(x, dtype=np.float32))

    def fit(self, x, y):
        """`x`: the preprocessed frame (its column names say which inputs are the sequence's)."""
        import jax
        import jax.numpy as jnp

        names = list(x.columns)
        # The sequence columns in ml.propensity.sequences' order: oldest day first, channels within a day.
        order = {name: i for i, name in enumerate(names)}
        missing = [n for n in SEQUENCE_COLUMNS if n not in order]
        if missing:
            raise ValueError(f"the sequence network's inputs lack {len(missing)} seq_ columns, such as {missing[0]}")
        self.sequence_index_ = np.array([order[n] for n in SEQUENCE_COLUMNS])
        self.static_index_ = np.array([i for i, n in enumerate(names) if not is_sequence_column(n)])
        self.n_features_in_ = len(names)
        self.classes_ = np.array([0, 1])
        static, sequence = self._split(x)
        y = np.asarray(y, dtype=np.float32)
        rng = np.random.default_rng(self.seed)
        held = np.zeros(len(y), bool)
        held[rng.choice(len(y), max(1, len(y) // 10), replace=False)] = True
        fit_rows = np.flatnonzero(~held)
        initial = _initial(static.shape[1], self.hidden_units, self.dense_units, self.seed)
        params = {k: jnp.asarray(v) for k, v in initial.items()}
        penalised = ("W", "U", "W1", "w2")

        def loss(params, s, q, target):
            margin = _forward(params, s, q, jnp, jax.nn.sigmoid)
            log_loss = jnp.mean(jnp.logaddexp(0.0, margin) - target * margin)
            return log_loss + self.alpha * sum(jnp.sum(params[k] ** 2) for k in penalised)

        @jax.jit
        def step(params, moments, t, s, q, target):
            grads = jax.grad(loss)(params, s, q, target)
            first, second = moments
            first = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, first, grads)
            second = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, second, grads)
            rate = self.learning_rate * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            params = jax.tree.map(lambda p, m, v: p - rate * m / (jnp.sqrt(v) + 1e-8), params, first, second)
            return params, (first, second)

        held_loss = jax.jit(loss)
        zeros = jax.tree.map(jnp.zeros_like, params)
        moments, t = (zeros, zeros), 0
        best, best_loss, stale, history = params, np.inf, 0, []
        for _ in range(self.max_epochs):
            shuffled = rng.permutation(fit_rows)
            # Whole batches only: one compiled step (the few rows left over are next epoch's, reshuffled). Fewer
            # rows than a batch make one batch of all of them.
            size = min(self.batch_size, len(shuffled))
            for start in range(0, len(shuffled) - size + 1, size):
                rows = shuffled[start : start + size]
                t += 1
                params, moments = step(params, moments, t, static[rows], sequence[rows], y[rows])
            current = float(held_loss(params, static[held], sequence[held], y[held]))
            history.append(round(current, 5))
            if current < best_loss - 1e-5:
                best, best_loss, stale = params, current, 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        self.params_ = {k: np.asarray(v, dtype=np.float64) for k, v in best.items()}
        self.validation_loss_ = history
        self.n_iter_ = len(history)
        self.feature_importances_ = np.abs(self.input_contributions(np.asarray(x)[held][:2000])[0]).mean(axis=0)
        return self

    def decision_function(self, x) -> np.ndarray:
        static, sequence = self._split(x)
        return _forward(self.params_, static.astype(np.float64), sequence.astype(np.float64), np, expit)

    def predict_proba(self, x) -> np.ndarray:
        p = expit(self.decision_function(x))
        return np.column_stack([1 - p, p])

    def predict(self, x) -> np.ndarray:
        return (self.predict_proba(x)[:, 1] >= 0.5).astype(int)

    def input_contributions(self, x, steps: int = 16, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(per-column contributions, base value) on the log-odds scale: integrated gradients from the all-zero
        input (every input at its training mean on the scaled scale) to each row over `steps` points
        (ml.propensity.reasons.integrated_gradients, as for the feed-forward network); the gradients by JAX in
        batches of `batch` rows (one compiled program)."""
        import jax
        import jax.numpy as jnp

        from ml.propensity.reasons import integrated_gradients

        params = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in self.params_.items()}

        def total_margin(rows):
            static, sequence = self._parts(rows)
            return jnp.sum(_forward(params, static, sequence, jnp, jax.nn.sigmoid))

        compiled = jax.jit(jax.grad(total_margin))

        def gradient(inputs: np.ndarray) -> np.ndarray:
            out = np.empty_like(inputs)
            for start in range(0, len(inputs), batch):
                rows = inputs[start : start + batch]
                padded = np.zeros((batch, inputs.shape[1]), np.float32)
                padded[: len(rows)] = rows
                out[start : start + len(rows)] = np.asarray(compiled(padded))[: len(rows)]
            return out

        return integrated_gradients(gradient, self.decision_function, np.asarray(x, dtype=np.float64), steps)
