"""Whole-layer atlas throughput: filters per second for one layer, the batch size chosen from the
memory budget, and the time to read the same atlas back from the cache.

    python benchmarks/atlas.py                                   # VGG16 (hed) block4_conv3, all 512 filters
    python benchmarks/atlas.py --filters 32                      # the first 32 filters only
    python benchmarks/atlas.py --layer block3_conv3 --size 96 --steps 48 --distribute

Defaults are a quick setting (preset "fast" at 64 px, 16 steps). The cache is a fresh temporary folder
unless --cache-dir is given. Prints, per run: filters, seconds, filters per second (overall, and after
the first batch, which includes compiling the step), the batch size, and the cached re-read time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="VGG16")
    parser.add_argument("--weights", default="hed", help="hed, none, imagenet or a path (default: hed)")
    parser.add_argument("--layer", default="block4_conv3")
    parser.add_argument("--filters", type=int, default=None, help="first N filters (default: all)")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=None, help="default: chosen from the memory budget")
    parser.add_argument("--memory-budget", type=float, default=None, help="GiB of activations per batch")
    parser.add_argument("--distribute", action="store_true",
                        help="split every batch over the local GPUs (a tf.distribute.MirroredStrategy)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import kerasviz as kv
    from kerasviz import atlas

    weights = None if args.weights.lower() == "none" else args.weights
    network = kv.get_model(args.model, weights=weights)
    filters = "all" if args.filters is None else list(range(args.filters))
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="kerasviz-atlas-bench-")
    budget = int(args.memory_budget * 1024**3) if args.memory_budget else None
    options = dict(cache_dir=cache_dir, preset=args.preset, size=args.size, steps=args.steps,
                   batch_size=args.batch_size, memory_budget=budget, progress=False,
                   distribute=tf.distribute.MirroredStrategy() if args.distribute else None)

    start = time.perf_counter()
    computed = atlas.layer_atlas(network, args.layer, filters, **options)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    cached = atlas.layer_atlas(network, args.layer, filters, **options)
    cached_seconds = time.perf_counter() - start
    assert cached.computed == [] and len(cached.cached) == len(computed.filters)

    firsts, steady, seen = [], [], set()
    for chunk in computed.chunks:  # (device, filters, seconds); each device's first batch compiles
        (steady if chunk[0] in seen else firsts).append(chunk)
        seen.add(chunk[0])
    steady_filters = sum(len(c[1]) for c in steady)
    steady_seconds = sum(c[2] for c in steady) / max(len(seen), 1)  # devices run side by side
    devices = sorted(str(d) for d in seen)
    figures = {
        "model": network.name, "weights": args.weights, "layer": computed.layer,
        "filters": len(computed.filters), "preset": args.preset, "size": args.size, "steps": args.steps,
        "batch_size": computed.batch_size, "chunks": len(computed.chunks), "devices": devices,
        "seconds": round(seconds, 2), "filters_per_second": round(len(computed.filters) / seconds, 3),
        "steady_filters_per_second": round(steady_filters / steady_seconds, 3) if steady_seconds else None,
        "first_batch_seconds": round(max(c[2] for c in firsts), 2) if firsts else None,
        "cached_seconds": round(cached_seconds, 3),
        "gpus": len(tf.config.list_physical_devices("GPU")), "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    print(f"{figures['model']} {figures['layer']}: {figures['filters']} filters, preset {args.preset}, "
          f"{args.size} px, {args.steps} steps, batch size {figures['batch_size']} ({figures['chunks']} batches, "
          f"devices {', '.join(devices)})")
    print(f"  computed in {seconds:.1f} s: {figures['filters_per_second']} filters/s "
          f"(after the first batch, which compiles: {figures['steady_filters_per_second']} filters/s; "
          f"first batch {figures['first_batch_seconds']} s)")
    print(f"  read back from the cache in {cached_seconds:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return figures


if __name__ == "__main__":
    main()
