"""Where a batch runs: on the default device, split across the replicas of a `tf.distribute.Strategy`, or
whole batches on the workers of a Ray cluster (`Ray`).

The optimizer's loop talks to an executor with three verbs: `put` a host array (batch on axis 0) where
the step runs, `call` a compiled function there, and `get` its result back as one host array. The local
executor is the identity; the replicated one gives each replica a contiguous slice of the batch through
`strategy.run`, so a `MirroredStrategy` over N GPUs runs N slices of every step at once. A filter's
picture depends only on its seed and index, so the split does not change any picture.

`Ray` describes a cluster (or a local Ray on this machine) for the atlases: each batch of filters is one
Ray call on a long-lived worker (see `kerasviz.atlas.cluster`). Ray is imported only when one is used.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable

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



RAY_EXTRA = 'pip install "kerasviz[ray]"'


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"kv.distribute.Ray needs Ray, which is not installed: {RAY_EXTRA}.") from e
    return ray


@dataclasses.dataclass(frozen=True)
class Ray:
    """A Ray cluster (or a local Ray on this machine) whose workers compute an atlas's batches.

    Each batch of filters is one call on a long-lived worker (a Ray actor that keeps the model and its
    compiled steps between batches) that asks for `num_cpus` and `num_gpus`. The model reaches each
    worker once; each worker writes its finished filters into the shared cache itself.

    Args:
        address: the cluster to join: `"auto"` (the one `ray start` runs on this machine), `"ray://host:10001"`
            or `"host:6379"`. None starts a local Ray on this machine (every core). Ignored when Ray is already
            initialized in this process. Defaults to None.
        num_cpus: CPUs each worker asks for (fractions allowed); its math runs on that many threads.
            Defaults to 1.
        num_gpus: GPUs each worker asks for (fractions allowed: 0.5 puts two workers on a GPU). Defaults to 0.
        workers: how many workers. Defaults to as many as the cluster's free CPUs (or GPUs, when
            `num_gpus > 0`) fit when the workers start (the first atlas of this process).
        max_retries: how often a batch whose worker died (killed, out of memory, a lost node) is run again
            on a restarted worker. An error raised by the batch itself (a bad layer, a model that does not
            load) is not retried. Defaults to 3.
        init_options: extra `ray.init` arguments (`runtime_env`, `namespace`, ...), used when this process
            starts or joins Ray. Defaults to none.

    Example:
    >>> cluster = kv.distribute.Ray(address="auto", num_gpus=1)
    >>> atlases = kv.model_atlas("ResNet50V2", distribute=cluster, cache_dir="/shared/kerasviz")
    """

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    workers: int | None = None
    max_retries: int = 3
    init_options: dict = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        for field in ("num_cpus", "num_gpus"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"Ray({field}=...) must be a number >= 0. Received: {field}={value!r}.")
        if self.num_cpus == 0 and self.num_gpus == 0:
            raise ValueError("Ray(num_cpus=0, num_gpus=0): each worker must ask for a CPU or a GPU share.")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ValueError(f"Ray(workers=...) must be an int >= 1 or None. Received: workers={self.workers!r}.")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"Ray(max_retries=...) must be an int >= 0. Received: {self.max_retries!r}.")

    def connect(self):
        """Start or join Ray (unless this process already has), and return the `ray` module.

        Raises:
            ImportError: Ray is not installed (`pip install "kerasviz[ray]"`).
            ConnectionError: no cluster at `address`.
        """
        ray = _import_ray()
        if not ray.is_initialized():
            options = {"include_dashboard": False, **self.init_options}
            if self.address is not None:
                options["address"] = self.address
            try:
                ray.init(**options)
            except ConnectionError as e:
                raise ConnectionError(f"kv.distribute.Ray(address={self.address!r}): no Ray cluster there ({e}). "
                                      "Start one with `ray start --head`, or pass address=None for a local "
                                      "Ray on this machine.") from e
        return ray

    def worker_count(self) -> int:
        """How many workers: `workers`, else as many as the cluster's free resources fit now (at least 1;
        workers that do not fit wait, with their batches, until resources free up).

        Raises:
            ValueError: `num_gpus > 0` on a cluster without GPUs.
        """
        if self.workers is not None:
            return self.workers
        ray = self.connect()
        free = ray.available_resources()
        if self.num_gpus and not ray.cluster_resources().get("GPU", 0):
            raise ValueError(f"Ray(num_gpus={self.num_gpus}) but the cluster has no GPU; pass num_gpus=0 to run on "
                             "CPUs.")
        fits = [math.floor(free.get(name, 0) / share + 1e-9)
                for name, share in (("CPU", self.num_cpus), ("GPU", self.num_gpus)) if share]
        return max(1, min(fits))

    @property
    def threads(self) -> int:
        """The math threads of each worker: its CPU share, at least one."""
        return max(1, math.ceil(self.num_cpus))


def local_ray() -> Ray:
    """A local Ray on this machine: one worker per GPU when it has GPUs, else one per core.

    Example:
    >>> kv.distribute.local_ray().address is None
    True
    """
    resources = Ray().connect().cluster_resources()
    if resources.get("GPU", 0) >= 1:
        return Ray(num_gpus=1.0, num_cpus=max(1.0, resources.get("CPU", 1) // resources["GPU"]))
    return Ray()


def resolve(distribute):
    """What `distribute=` means: None (one device), a `tf.distribute.Strategy`, or a `Ray`.

    Two older spellings still work, with a `DeprecationWarning`: True (now a local Ray, `local_ray()`) and a
    list of device names (now `tf.distribute.MirroredStrategy(devices)`).

    Args:
        distribute: None, a `tf.distribute.Strategy`, a `Ray`, True or a list of device names.

    Returns:
        None, the Strategy, or a `Ray`.

    Raises:
        TypeError: anything else.
        ValueError: an empty list of devices.
        ImportError: True without Ray installed.

    Example:
    >>> kv.distribute.resolve(None) is None
    True
    """
    if distribute is None or distribute is False:
        return None
    if isinstance(distribute, Ray):
        return distribute
    if distribute is True:
        warnings.warn("distribute=True now runs on a local Ray (one worker per GPU, else per core); pass "
                      "distribute=kv.distribute.Ray() (or a tf.distribute.MirroredStrategy) instead.",
                      DeprecationWarning, stacklevel=3)
        _import_ray()
        return local_ray()
    import tensorflow as tf

    if isinstance(distribute, tf.distribute.Strategy):
        return distribute
    if isinstance(distribute, str) or not isinstance(distribute, Iterable):
        raise TypeError("distribute must be None, a tf.distribute.Strategy (e.g. MirroredStrategy()) or a "
                        f"kv.distribute.Ray(...). Received: {distribute!r}.")
    devices = [str(d) for d in distribute]
    if not devices:
        raise ValueError("distribute: no device to run on.")
    warnings.warn(f"distribute=<a list of devices> is now tf.distribute.MirroredStrategy({devices}) (the same "
                  "pictures); pass that, or kv.distribute.Ray(), instead.", DeprecationWarning, stacklevel=3)
    return tf.distribute.MirroredStrategy(devices)


def replicas(distribute) -> int:
    """How many replicas split each batch: a Strategy's, else 1."""
    return int(getattr(distribute, "num_replicas_in_sync", 1))
