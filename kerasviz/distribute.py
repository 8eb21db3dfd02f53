"""Where a batch runs: on the default device, or split across the replicas of a `tf.distribute.Strategy`.

The optimizer's loop talks to an executor with three verbs: `put` a host array (batch on axis 0) where
the step runs, `call` a compiled function there, and `get` its result back as one host array. The local
executor is the identity; the replicated one gives each replica a contiguous slice of the batch through
`strategy.run`, so a `MirroredStrategy` over N GPUs runs N slices of every step at once. A filter's
picture depends only on its seed and index, so the split does not change any picture.
"""

from __future__ import annotations

import numpy as np

from kerasviz import backend


class Local:
    """The default device: tensors as they are."""

    replicas = 1

    def put(self, array):
        return backend.to_tensor(array)

    def call(self, fn, *args):
        return fn(*args)

    def get(self, value) -> np.ndarray:
        return backend.to_numpy(value)


class Replicated:
    """Each replica of `strategy` runs an equal slice of the batch (the batch must divide evenly).

    Args:
        strategy: a `tf.distribute.Strategy` (e.g. `MirroredStrategy`), TensorFlow backend only.
    """

    def __init__(self, strategy):
        self.strategy = strategy
        self.replicas = int(strategy.num_replicas_in_sync)

    def put(self, array):
        array = np.asarray(array)
        if array.ndim == 0:
            return backend.to_tensor(array)  # a scalar: the same on every replica
        if len(array) % self.replicas:
            raise ValueError(f"A batch of {len(array)} does not split over {self.replicas} replicas.")
        parts = np.split(array, self.replicas)
        return self.strategy.experimental_distribute_values_from_function(
            lambda context: backend.to_tensor(parts[context.replica_id_in_sync_group]))

    def call(self, fn, *args):
        return self.strategy.run(fn, args=args)

    def get(self, value) -> np.ndarray:
        parts = self.strategy.experimental_local_results(value)
        return np.concatenate([backend.to_numpy(p) for p in parts])


def executor(distribute=None):
    """The executor for `distribute`: None for the default device, or a `tf.distribute.Strategy`.

    Args:
        distribute: None, or a `tf.distribute.Strategy` whose replicas split each batch.

    Returns:
        A `Local` or `Replicated` executor.

    Raises:
        TypeError: `distribute` is not a Strategy.
        ValueError: a Strategy on a Keras backend other than TensorFlow.

    Example:
    >>> kv.distribute.executor(None).replicas
    1
    """
    if distribute is None:
        return Local()
    if backend.name() != "tensorflow":
        raise ValueError(f"distribute=<a tf.distribute.Strategy> needs the TensorFlow backend; this is "
                         f"{backend.name()!r}. On JAX, run one process per device or use jax.sharding.")
    import tensorflow as tf

    if not isinstance(distribute, tf.distribute.Strategy):
        raise TypeError(f"distribute must be a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()) "
                        f"or None. Received: {distribute!r}.")
    return Replicated(distribute)


def pad(items: list, replicas: int) -> list:
    """`items` made a multiple of `replicas` long by repeating the last one."""
    extra = -len(items) % replicas
    return list(items) + [items[-1]] * extra
