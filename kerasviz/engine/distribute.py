"""Where a batch runs: on the default device, or split across the replicas of a `tf.distribute.Strategy`.

The optimizer's loop talks to an executor with three verbs: `put` a host array (batch on axis 0) where
the step runs, `call` a compiled function there, and `get` its result back as one host array. The local
executor is the identity; the replicated one gives each replica a contiguous slice of the batch through
`strategy.run`, so a `MirroredStrategy` over N GPUs runs N slices of every step at once. A filter's
picture depends only on its seed and index, so the split does not change any picture.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable, Iterable

import keras
import numpy as np

from kerasviz.engine import backend


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

@dataclasses.dataclass(frozen=True)
class Placement:
    """Where the batches run: on `devices`, one worker each pulling from a queue, or on `strategy`,
    whose replicas split each batch with `strategy.run`; with neither, on the default device."""

    devices: tuple[str, ...] = ()
    strategy: object = None

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy is not None else 1


def placement(distribute) -> Placement:
    """Where the batches of an atlas run, from what the user passed as `distribute`.

    Args:
        distribute: None (the default device), a `tf.distribute.Strategy` (its replicas split each
            batch), True (every GPU, else every logical CPU) or a list of device names (one worker
            each, pulling whole batches from a queue).

    Returns:
        A `Placement`.

    Raises:
        TypeError: anything else.
        ValueError: an empty list of devices.

    Example:
    >>> kv.distribute.placement(None).replicas
    1
    """
    if distribute is None or distribute is False:
        return Placement()
    import tensorflow as tf

    if distribute is True:
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    elif isinstance(distribute, tf.distribute.Strategy):
        return Placement(strategy=distribute)
    elif isinstance(distribute, str) or not isinstance(distribute, Iterable):
        raise TypeError(
            "distribute must be True, a tf.distribute.Strategy (e.g. MirroredStrategy) or a list of "
            f"device names. Received: {distribute!r}."
        )
    else:
        devices = [str(d) for d in distribute]
    if not devices:
        raise ValueError("distribute: no device to run on.")
    return Placement(devices=tuple(devices))


def replicas(network, devices: list[str]) -> list:
    """One network per device, each with its own copy of the weights on that device (the first
    device uses the model itself)."""
    import tensorflow as tf

    out = [network]
    for device in devices[1:]:
        with tf.device(device):
            try:
                clone = keras.models.clone_model(network.model)
                clone.set_weights(network.model.get_weights())
            except Exception:  # a model that cannot be cloned: share it (weights are copied per step)
                clone = network.model
        out.append(dataclasses.replace(network, model=clone))
    return out


def run_on_devices(chunks: list, workers: list[tuple], run_chunk: Callable) -> bool:
    """Run chunks on several devices at once, one thread per `(network, device)` worker pulling from a
    queue: `run_chunk(network, chunk, device)` returns False to stop. Returns True when interrupted."""
    work: queue.Queue = queue.Queue()
    for chunk in chunks:
        work.put(chunk)
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(network, device):
        while not stop.is_set():
            try:
                chunk = work.get_nowait()
            except queue.Empty:
                return
            try:
                if not run_chunk(network, chunk, device):
                    stop.set()
            except BaseException as e:  # noqa: B036 - handed to the main thread
                errors.append(e)
                stop.set()

    threads = [threading.Thread(target=worker, args=(net, dev), daemon=True)
               for net, dev in workers]
    for t in threads:
        t.start()
    interrupted = False
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:  # finish the chunks in flight (they are stored), start no more
        interrupted = True
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return interrupted or stop.is_set()


def on_device(device: str):
    """A context manager that places the ops it runs on `device` (TensorFlow), for the per-device workers."""
    import tensorflow as tf

    return tf.device(device)
