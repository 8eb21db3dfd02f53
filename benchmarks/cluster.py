"""Atlases on a local Ray: filters per second with 1 and 2 workers (one thread each), scaling efficiency,
the per-batch overhead against a plain in-process run, actors against tasks, and the cache's read-back time.

    python benchmarks/cluster.py                        # VGG16 (hed) block3_conv3, 16 filters, 4 per batch
    python benchmarks/cluster.py --filters 32 --steps 32
    python benchmarks/cluster.py --per-filter ResNet50V2 --weights none --filters 4   # the per-filter cost

Every run computes the same filters of the same layer from an empty cache, after a warm-up batch that builds
the model and compiles the step in each worker (their one-time cost is printed apart). "In process" runs the
layer's plan here, one batch after the other, on one thread, as `layer_atlas` does without `distribute`.
"Actors" is `kv.distribute.Ray` (one actor per worker, keeping the model and its compiled steps); "tasks"
runs the same `Worker` code as plain Ray tasks on Ray's long-lived worker processes.

`--per-filter MODEL` measures instead the in-process cost per filter of `--filters` filters of each layer
named (`--layers`), at the default preset, for the estimate of a whole gallery in the docs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")  # in process: one thread, as each worker
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # as Ray sets it in its workers


def _tasks_run(task, chunk):
    """A Ray task: the worker process's `Worker` (made once per process, kept between tasks) runs `chunk`."""
    import kerasviz.atlas.cluster as cluster

    worker = cluster.__dict__.get("_benchmark_worker")
    if worker is None:
        worker = cluster.__dict__["_benchmark_worker"] = cluster.Worker(1)
    return worker.run(task, chunk)


def _tasks(job_task, chunks, workers: int):
    """Run `chunks` as Ray tasks, at most `workers` at once; (wall seconds, worker seconds)."""
    import ray

    remote = ray.remote(num_cpus=1, max_retries=3)(_tasks_run)
    task = ray.put(job_task)
    start = time.perf_counter()
    todo, flight, done = list(chunks), [], []
    while todo or flight:
        while todo and len(flight) < workers:
            flight.append(remote.remote(task, todo.pop(0)))
        ready, flight = ray.wait(flight, num_returns=1)
        done += ray.get(ready)
    return time.perf_counter() - start, sum(d["seconds"] for d in done)


def cluster_figures(args) -> dict:
    import ray

    import kerasviz as kv
    from kerasviz import atlas, optimize
    from kerasviz.atlas import atlases, cluster

    weights = None if args.weights.lower() == "none" else args.weights
    network = kv.get_model(args.model, weights=weights)
    filters = list(range(args.filters))
    warm = list(range(args.filters, args.filters + args.batch_size * 2))  # other filters, same steps
    options = dict(preset=args.preset, size=args.size, steps=args.steps, batch_size=args.batch_size, progress=False)
    root = tempfile.mkdtemp(prefix="kerasviz-cluster-bench-")
    out = {"model": args.model, "layer": args.layer, "filters": len(filters), "batch_size": args.batch_size,
           "size": args.size, "steps": args.steps, "preset": args.preset}
    try:
        atlas.layer_atlas(network, args.layer, warm[:args.batch_size], cache_dir=f"{root}/warm-here", **options)
        start = time.perf_counter()
        here = atlas.layer_atlas(network, args.layer, filters, cache_dir=f"{root}/here", **options)
        out["in_process"] = {"seconds": time.perf_counter() - start, "batches": len(here.chunks)}
        out["in_process"]["filters_per_s"] = len(filters) / out["in_process"]["seconds"]
        out["in_process"]["per_batch_s"] = out["in_process"]["seconds"] / len(here.chunks)

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        for workers in (1, 2):
            config = kv.distribute.Ray(workers=workers)
            start = time.perf_counter()
            atlas.layer_atlas(network, args.layer, warm, cache_dir=f"{root}/warm-{workers}", distribute=config,
                              **options)
            start_up = time.perf_counter() - start
            start = time.perf_counter()
            result = atlas.layer_atlas(network, args.layer, filters, cache_dir=f"{root}/actors-{workers}",
                                       distribute=config, **options)
            wall = time.perf_counter() - start
            np_equal = bool((result.images == here.images).all())
            compute = sum(s for _, _, s in result.chunks)
            out[f"actors_{workers}"] = {
                "start_up_s": start_up, "seconds": wall, "filters_per_s": len(filters) / wall,
                "worker_compute_s": compute, "batches": len(result.chunks),
                # what a batch costs beyond its compute: driver, object store, cache writes, scheduling
                "overhead_per_batch_s": (wall * workers - compute) / len(result.chunks),
                "same_pixels_as_in_process": np_equal,
            }
            cluster.close()

            # the same work as plain tasks on Ray's long-lived worker processes
            job = atlases.prepare(network, args.layer, filters, cache_dir=f"{root}/tasks-{workers}",
                                  preset=args.preset, overrides=dict(size=args.size, steps=args.steps),
                                  objective=None, run=optimize.RunOptions(batch_size=args.batch_size, seed=0))
            spec = cluster.model_spec(network, ray)
            task = cluster.LayerTask(model=spec, layer=job.path, settings=job.plan.settings, seed=0, objective=None,
                                     batch_size=job.plan.batch_size, folder=job.cache.folder,
                                     cache_settings=job.cache.settings, key=atlas.cache_key(job.cache.settings))
            warm_task = dataclasses.replace(task, folder=f"{root}/tasks-warm-{workers}")
            t0 = time.perf_counter()
            _tasks(warm_task, [[f] for f in warm[:workers * 2]], workers)
            tasks_start_up = time.perf_counter() - t0
            wall, compute = _tasks(task, job.plan.chunks(filters), workers)
            out[f"tasks_{workers}"] = {"start_up_s": tasks_start_up, "seconds": wall,
                                       "filters_per_s": len(filters) / wall, "worker_compute_s": compute}
            if workers == 1:  # let the task workers go before the 2-worker runs
                ray.shutdown()
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        for kind in ("actors", "tasks"):
            one, two = out[f"{kind}_1"]["filters_per_s"], out[f"{kind}_2"]["filters_per_s"]
            out[f"{kind}_scaling_efficiency"] = two / (2 * one)

        # the driver's read-back: every filter from the cache the workers wrote
        cache = atlases.prepare(network, args.layer, filters, cache_dir=f"{root}/actors-2", preset=args.preset,
                                overrides=dict(size=args.size, steps=args.steps), objective=None,
                                run=optimize.RunOptions(batch_size=args.batch_size, seed=0)).cache
        start = time.perf_counter()
        hits = [cache.load(f, network.input_channels) for f in filters]
        out["cache_read_back_s_per_filter"] = (time.perf_counter() - start) / len(filters)
        assert all(h is not None for h in hits)
    finally:
        cluster.close()
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    return out


def per_filter_figures(args) -> dict:
    import kerasviz as kv
    from kerasviz import optimize

    weights = None if args.weights.lower() == "none" else args.weights
    network = kv.get_model(args.per_filter, weights=weights)
    out = {"model": args.per_filter, "weights": weights, "preset": "quality (the default)", "layers": {}}
    for layer in args.layers.split(","):
        plan = optimize.plan(network, layer, list(range(args.filters)), batch_size=args.batch_size)  # quality
        plan.run()  # compile every step of this batch size (each octave's), then time the same batch
        start = time.perf_counter()
        plan.run()
        seconds = time.perf_counter() - start
        out["layers"][layer] = {"filters": args.filters, "seconds": seconds, "s_per_filter": seconds / args.filters}
        print(layer, out["layers"][layer], flush=True)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="VGG16")
    parser.add_argument("--weights", default="hed", help="hed, none, imagenet or a path (default: hed)")
    parser.add_argument("--layer", default="block3_conv3")
    parser.add_argument("--filters", type=int, default=16, help="first N filters (default: 16)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--per-filter", default=None, metavar="MODEL", help="measure the per-filter cost instead")
    parser.add_argument("--layers", default="conv2_block1_1_conv,conv3_block1_1_conv,conv4_block6_3_conv,"
                                            "conv5_block3_3_conv")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    figures = per_filter_figures(args) if args.per_filter else cluster_figures(args)
    figures["load_average"] = os.getloadavg()
    figures["cpus"] = os.cpu_count()
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return figures


if __name__ == "__main__":
    main()
