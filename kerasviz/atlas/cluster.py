"""Atlases on a Ray cluster: the driver's loop and the workers that run the batches.

The driver (`run`) resolves every layer itself (`optimize.plan`, the cache key, what the cache already
holds), then sends each batch of filters still to compute to a worker. A worker is a Ray actor that lives as
long as the driver's Ray session: it builds the model once (from its `keras.applications` name and weights
source, or from `.keras` bytes put once in the object store), plans each layer once (so its compiled steps
serve every later batch), writes each finished filter into the shared cache itself and returns only the
filter indices and scores. The driver reads the pictures back from the cache.

A worker that dies (killed, out of memory, a lost node) is restarted by Ray, which runs its batches again
(`Ray.max_retries`); an error raised by a batch (a bad layer, a model that does not load) is not retried: it
is raised once, in the driver, as the worker raised it.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import socket
import tempfile
import time
from collections.abc import Sequence

import keras

from kerasviz import nets, optimize
from kerasviz.atlas.cache import FilterCache, cache_key, cache_settings
from kerasviz.engine import presets
from kerasviz.engine.distribute import Ray

SHIPPED_BY_NAME = ("imagenet", "hed")  # weights every worker can rebuild alone; others travel as bytes


IN_FLIGHT_PER_WORKER = 2  # a batch running and one queued, so that a worker never waits for the driver


MODELS_PER_WORKER = 2  # models a worker keeps built (and their compiled steps), the latest used


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How a worker gets the model: rebuilt by name and weights source, or loaded from `.keras` bytes.

    Attributes:
        name: the model's display name (a `keras.applications` name when `payload` is None).
        weights: the weights source (`"imagenet"`, `"hed"`) when built by name.
        preprocess: the `Network`'s preprocessing.
        image_input: the input that is optimized.
        other_inputs: the values of the other inputs.
        payload: a Ray object reference to the `.keras` bytes, or None.
        custom_objects: registered Keras objects (and those given), pickled with the spec.
        key: the identity of this model in the workers' caches.
    """

    name: str
    weights: str | None
    preprocess: object
    image_input: int
    other_inputs: dict
    payload: object
    custom_objects: dict
    key: str


@dataclasses.dataclass(frozen=True)
class LayerTask:
    """One layer's share of an atlas, as a worker needs it: sent once per layer, reused by every batch."""

    model: ModelSpec
    layer: str
    settings: presets.Preset
    seed: int
    objective: object
    batch_size: int
    folder: str
    cache_settings: dict
    key: str  # the cache key the driver computed; the worker checks it computes the same


def _keras_bytes(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def model_spec(network: nets.Network, ray) -> ModelSpec:
    """What the workers need to build `network` (see `ModelSpec`): the `.keras` bytes go into the object
    store once, for every worker and every batch.

    Custom layers travel when registered with `keras.saving.register_keras_serializable` (the registry is
    pickled with the spec); their module must import on the workers.
    """
    from kerasviz import catalog

    by_name = network.weights in SHIPPED_BY_NAME and network.name in catalog.list_models()
    payload = None
    if by_name:
        key = f"{network.name}:{network.weights}"
    else:
        data = _keras_bytes(network.model)
        payload = ray.put(data)
        import hashlib

        key = f"{network.name}:{hashlib.blake2b(data, digest_size=12).hexdigest()}"
    return ModelSpec(name=network.name, weights=network.weights if by_name else None,
                     preprocess=network.preprocess, image_input=network.image_input,
                     other_inputs=dict(network.other_inputs), payload=payload,
                     custom_objects=dict(keras.saving.get_custom_objects()), key=key)


def build_network(spec: ModelSpec, ray=None) -> nets.Network:
    """The `Network` a `ModelSpec` describes, built here (on a worker)."""
    if spec.payload is None:
        network = nets.get_model(spec.name, weights=spec.weights)
    else:
        data = ray.get(spec.payload) if not isinstance(spec.payload, bytes) else spec.payload
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            with open(path, "wb") as f:
                f.write(data)
            try:
                model = keras.saving.load_model(path, compile=False, custom_objects=spec.custom_objects)
            except Exception as e:  # Keras raises several kinds for a class it cannot find
                raise ValueError(f"A Ray worker could not load {spec.name} from its .keras bytes: {e}. Custom "
                                 "layers must be registered (keras.saving.register_keras_serializable) in a "
                                 "module the workers can import.") from e
        network = nets.Network(model, spec.name, spec.preprocess)
    return dataclasses.replace(network, preprocess=spec.preprocess, image_input=spec.image_input,
                               other_inputs=dict(spec.other_inputs))


class Worker:
    """What runs on each Ray worker: a few models and their plans, kept between batches.

    Args:
        threads: the math threads of this worker (set before the framework starts its thread pools).
    """

    def __init__(self, threads: int = 1):
        for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ.setdefault(var, str(threads))
        # GPU memory as needed, not all of it at start, so that workers can share a GPU (num_gpus=0.5)
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        self.networks: collections.OrderedDict = collections.OrderedDict()
        self.plans: dict = {}
        self.caches: dict = {}  # folder -> FilterCache
        self.started = 0
        self.finished = 0

    def _network(self, spec: ModelSpec) -> nets.Network:
        if spec.key not in self.networks:
            import ray

            self.networks[spec.key] = build_network(spec, ray)
            while len(self.networks) > MODELS_PER_WORKER:
                old, _ = self.networks.popitem(last=False)
                self.plans = {k: v for k, v in self.plans.items() if k[0] != old}
        self.networks.move_to_end(spec.key)
        return self.networks[spec.key]

    def plan(self, task: LayerTask) -> optimize.Plan:
        """The worker's plan of `task`'s layer, made once; its cache key must be the driver's."""
        id_ = (task.model.key, task.key, task.batch_size)
        if id_ not in self.plans:
            network = self._network(task.model)
            plan = optimize.plan(network, task.layer, "all", objective=task.objective, preset=task.settings,
                                 seed=task.seed, batch_size=task.batch_size)
            mine = cache_settings(network, plan.layer, plan.settings, seed=task.seed, objective=task.objective)
            if cache_key(mine) != task.key:
                differ = sorted(k for k in mine if mine[k] != task.cache_settings.get(k))
                raise ValueError(f"The Ray worker's {task.model.name} differs from the driver's in {differ} (a "
                                 f"different Keras version, weights file or backend?): its pictures would not "
                                 f"match the cache. Pass the keras.Model itself, or make the workers' "
                                 f"environment the driver's.")
            self.plans[id_] = plan
        return self.plans[id_]

    def run(self, task: LayerTask, chunk: Sequence[int]) -> dict:
        """Compute `chunk`'s filters of `task`'s layer and store each in the cache.

        Returns:
            A dict: `filters`, `scores` (those finished), `seconds` (this batch), `worker` (`host:pid`).
        """
        self.started += 1
        plan = self.plan(task)
        t0 = time.perf_counter()
        result = plan.run([int(f) for f in chunk])
        seconds = time.perf_counter() - t0
        if task.folder not in self.caches:
            self.caches[task.folder] = FilterCache(task.folder, task.cache_settings)
        stored = self.caches[task.folder].store_result(result, seconds)
        self.finished += 1
        return {"filters": stored, "scores": [float(s) for s in result.scores[: len(stored)]], "seconds": seconds,
                "worker": f"{socket.gethostname()}:{os.getpid()}"}

    def stats(self) -> dict:
        """`pid`, `started` and `finished` batches of this worker process."""
        return {"pid": os.getpid(), "started": self.started, "finished": self.finished}


class Pool:
    """The workers of one `Ray` configuration, kept for the life of the driver's Ray session.

    Args:
        config: the `Ray` configuration.
    """

    def __init__(self, config: Ray):
        ray = config.connect()
        self.config = config
        self.ray = ray
        remote = ray.remote(Worker)
        options = dict(num_cpus=config.num_cpus, num_gpus=config.num_gpus, max_restarts=config.max_retries,
                       max_task_retries=config.max_retries)
        self.actors = [remote.options(**options).remote(config.threads) for _ in range(config.worker_count())]

    def stats(self) -> list[dict]:
        """Each worker's `Worker.stats()`."""
        return self.ray.get([a.stats.remote() for a in self.actors])

    def close(self) -> None:
        """End the workers."""
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors = []


_POOLS: dict = {}


def pool(config: Ray) -> Pool:
    """The `Pool` of `config`, started on first use and reused while this process's Ray session lasts (a
    pool of another configuration is ended first)."""
    ray = config.connect()
    context = ray.get_runtime_context()
    session = (context.get_job_id(), context.get_node_id())  # a new Ray session has a new node id
    known = _POOLS.get(config)
    if known is None or known[0] != session:
        close()  # one pool at a time: another configuration's workers would hold the resources
        _POOLS[config] = (session, Pool(config))
    return _POOLS[config][1]


def close() -> None:
    """End every worker this process started (they end with its Ray session anyway)."""
    for _, p in _POOLS.values():
        try:
            p.close()
        except Exception:  # Ray already shut down: nothing left to end
            pass
    _POOLS.clear()


@dataclasses.dataclass
class Outcome:
    """What the cluster did for one layer: filters done with their scores, per-batch records."""

    scores: dict = dataclasses.field(default_factory=dict)
    chunks: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def _cause(error):
    """The exception a worker raised, from Ray's wrapper (or the wrapper, when it holds none)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def run(layers: list[tuple[LayerTask, list[list[int]]]], config: Ray, bar) -> tuple[list[Outcome], bool]:
    """Run every layer's batches on the cluster's workers, keeping each busy.

    Args:
        layers: `(task, batches)` per layer.
        config: the `Ray` configuration.
        bar: the `FilterBar`: moved by each finished batch.

    Returns:
        `(outcomes, interrupted)`: an `Outcome` per layer, and whether Ctrl-C stopped the run (what was
        finished is cached).

    Raises:
        RuntimeError: a worker died more often than `max_retries` (the finished filters are cached).
        Exception: the error a batch raised (a bad layer, a model that does not load), as raised.
    """
    outcomes = [Outcome() for _ in layers]
    work = collections.deque((i, chunk) for i, (_, chunks) in enumerate(layers) for chunk in chunks)
    if not work:
        return outcomes, False
    workers = pool(config)
    ray = workers.ray
    tasks = [ray.put(task) for task, _ in layers]  # each layer's task crosses the wire once
    load = {j: 0 for j in range(len(workers.actors))}
    flight: dict = {}
    try:
        while work or flight:
            while work and min(load.values()) < IN_FLIGHT_PER_WORKER:
                j = min(load, key=load.get)
                i, chunk = work.popleft()
                flight[workers.actors[j].run.remote(tasks[i], chunk)] = (i, chunk, j)
                load[j] += 1
            ready, _ = ray.wait(list(flight), num_returns=1)
            for ref in ready:
                i, chunk, j = flight.pop(ref)
                load[j] -= 1
                try:
                    done = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    raise _cause(e) from None
                except ray.exceptions.RayActorError as e:
                    raise RuntimeError(f"A Ray worker died more than max_retries={config.max_retries} times running "
                                       f"filters {list(chunk)} of {layers[i][0].layer}. The finished filters are "
                                       f"cached: run the same call again to resume. ({type(e).__name__})") from e
                out = outcomes[i]
                out.scores.update(zip(done["filters"], done["scores"], strict=True))
                out.chunks.append((f"ray:{done['worker']}", done["filters"], done["seconds"]))
                out.seconds += done["seconds"]
                bar.advance(len(done["filters"]))
                bar.describe(layers[i][0].layer)
    except KeyboardInterrupt:  # what the workers finished is stored; start no more
        for ref in flight:
            ray.cancel(ref)
        return outcomes, True
    except BaseException:
        for ref in flight:
            ray.cancel(ref)
        raise
    return outcomes, False
