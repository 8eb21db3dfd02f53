"""Where a batch runs: on the default device, split across the replicas of a `tf.distribute.Strategy`, or
whole batches on the workers of a Ray cluster (`Ray`).

The optimizer's loop talks to an executor with three verbs: `put` a host array (batch on axis 0) where
the step runs, `call` a compiled function there, and `get` its result back as one host array. The local
executor is the identity; the replicated one gives each replica a contiguous slice of the batch through
`strategy.run`, so a `MirroredStrategy` over N GPUs runs N slices of every step at once. A filter's
picture depends only on its seed and index, so the split does not change any picture.

`Ray` describes a cluster (or a local Ray on this machine) for the atlases: each batch of filters is one
Ray call on a long-lived worker (see `kerasviz.atlas.cluster`). Ray is imported only when one is used.

`read` is the one reader of `distribute=`, for every entry point: None, a Strategy or a `Ray` in, an executor
(or the `Ray`) out; `optimize.plan` reads it once per plan and hands the executor to every chunk.
"""

from __future__ import annotations

import dataclasses
import math

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
    >>> cluster = kv.distribute.Ray(address="auto", num_gpus=1)  # nothing starts until an atlas runs on it
    >>> cluster.threads
    1

    On a cluster (`ray start --head` run on this machine, a cache every worker reaches):

    ```python
    atlases = kv.model_atlas("ResNet50V2", distribute=cluster, cache_dir="/shared/kerasviz")
    ```
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

    Example (it starts a local Ray when this process has none):

    ```python
    atlas = kv.layer_atlas("VGG16", "block4_conv3", weights="hed", distribute=kv.distribute.local_ray())
    ```
    """
    resources = Ray().connect().cluster_resources()
    if resources.get("GPU", 0) >= 1:
        return Ray(num_gpus=1.0, num_cpus=max(1.0, resources.get("CPU", 1) // resources["GPU"]))
    return Ray()


RAY_RUNS_ATLASES = ("distribute=kv.distribute.Ray(...) runs the batches of an atlas on Ray workers: use "
                    "kv.layer_atlas, kv.model_atlas or `kerasviz gallery --ray` / `kerasviz atlas --ray`. "
                    "visualize_filters, render and optimize.plan run in this process: pass None or a "
                    "tf.distribute.Strategy.")


def read(distribute, *, ray: bool = True):
    """What `distribute=` means, for every entry point: where the batches run.

    Args:
        distribute: None (the default device), a `tf.distribute.Strategy` (its replicas split each batch;
            TensorFlow backend), or a `Ray` (an atlas's batches on Ray workers).
        ray: whether the caller can run on Ray (the atlases); False for the entry points that run in this
            process (`visualize_filters`, `render`, `optimize.plan`). Defaults to True.

    Returns:
        A `Local` executor (None), a `Replicated` executor (a Strategy) or the `Ray` itself.

    Raises:
        TypeError: anything else (the message lists the three kinds).
        ValueError: a Strategy on a Keras backend other than TensorFlow, or a `Ray` where `ray` is False
            (the message names the entry points that run on Ray).

    Example:
    >>> kv.distribute.read(None).replicas
    1
    >>> kv.distribute.read(kv.distribute.Ray(workers=2))
    Ray(address=None, num_cpus=1.0, num_gpus=0.0, workers=2, max_retries=3, init_options={})
    """
    if distribute is None:
        return Local()
    if isinstance(distribute, Ray):
        if not ray:
            raise ValueError(f"{RAY_RUNS_ATLASES} Received: distribute={distribute!r}.")
        return distribute
    kinds = ("distribute must be None, a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()) or a "
             f"kv.distribute.Ray(...). Received: {distribute!r}.")
    if not backend.runs_strategies():  # a Strategy is TensorFlow's: no TensorFlow import on another backend
        if type(distribute).__module__.startswith("tensorflow"):
            raise ValueError(f"distribute=<a tf.distribute.Strategy> needs the TensorFlow backend; this is "
                             f"{backend.name()!r}. On JAX, run one process per device or use jax.sharding.")
        raise TypeError(kinds)
    import tensorflow as tf

    if not isinstance(distribute, tf.distribute.Strategy):
        raise TypeError(kinds)
    return Replicated(distribute)
