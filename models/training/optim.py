"""Adam as a ``tf.Module``: checkpointable, usable inside ``tf.distribute`` replica functions.

The update follows PyTorch's Adam (as the official StyleGAN2-ADA trainer uses it), including the
lazy-regularisation adjustment of learning rate and betas.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def lazy_regularization_hyperparams(lr: float, betas: tuple[float, float],
                                    interval: int | None) -> tuple[float, tuple[float, float]]:
    """Learning rate and betas for an optimiser that also takes a regularisation step every
    ``interval`` minibatches, so that the effective hyper-parameters match (StyleGAN2, App. B)."""
    if not interval:
        return lr, betas
    ratio = interval / (interval + 1)
    return lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)


class Adam(tf.Module):
    """Adam over a fixed list of variables, with slots created up front."""

    def __init__(self, variables: Sequence[tf.Variable], lr: float,
                 betas: tuple[float, float] = (0.0, 0.99), eps: float = 1e-8,
                 name: str = "adam") -> None:
        super().__init__(name=name)
        self.variables_ = list(variables)
        self.lr, self.beta1, self.beta2, self.eps = lr, betas[0], betas[1], eps
        agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, aggregation=agg)
                  for v in self.variables_]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, aggregation=agg)
                  for v in self.variables_]
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=agg)

    def apply(self, grads: Sequence[tf.Tensor]) -> None:
        """One update; ``grads`` must already be all-reduced across replicas."""
        t = self.t.assign_add(1)
        tf_t = tf.cast(t, tf.float32)
        bias1 = 1.0 - tf.pow(self.beta1, tf_t)
        bias2 = 1.0 - tf.pow(self.beta2, tf_t)
        step = self.lr / bias1
        for var, g, m, v in zip(self.variables_, grads, self.m, self.v):
            g = tf.where(tf.math.is_finite(g), g, tf.zeros_like(g))  # as the official trainer
            m_new = m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v_new = v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            denom = tf.sqrt(v_new) / tf.sqrt(bias2) + self.eps
            var.assign_sub(step * m_new / denom)
