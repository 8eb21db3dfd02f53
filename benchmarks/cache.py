"""Cache read-back: the time to read N cached filters before planning, one `load` per filter against one
`load_many` (one listing of the folder, one batched read), on a local folder and on `memory://`.

    python benchmarks/cache.py                       # 512 filters of 128 px, local and memory://
    python benchmarks/cache.py --filters 2048 --size 64
    python benchmarks/cache.py --url s3://bucket/kv-bench   # any fsspec URL too (s3 needs s3fs)

The pictures are smoothed noise (PNG sizes close to a real atlas's). Prints, per location: the write time
per filter, the read-back time of all N filters by `load` and by `load_many` (best of --repeat), and on an
fsspec store the file-system calls each makes (on an object store, each is a request).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

import numpy as np

from kerasviz.atlas.cache import FilterCache


def pictures(n: int, size: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        noise = rng.normal(size=(size // 8, size // 8, 3))
        big = np.kron(noise, np.ones((8, 8, 1)))  # blocky, then softened: compresses like a visualization
        big = (big + np.roll(big, 3, 0) + np.roll(big, 3, 1) + np.roll(big, -3, 0)) / 4
        out.append(np.clip(128 + 48 * big, 0, 255).astype("uint8"))
    return out


def count_requests(cache: FilterCache) -> list:
    """Count the file-system calls the cache makes (outer calls only), on an fsspec store: on an object store
    each is a round trip."""
    fs, calls, depth = getattr(cache._store, "fs", None), [], [0]
    if fs is None:  # a local folder: os calls, not counted
        return calls
    for name in ["ls", "cat", "cat_file", "exists", "info", "pipe_file"]:
        method = getattr(fs, name)

        def counted(*a, _m=method, _n=name, **k):
            if not depth[0]:
                calls.append(_n)
            depth[0] += 1
            try:
                return _m(*a, **k)
            finally:
                depth[0] -= 1

        setattr(fs, name, counted)
    return calls


def bench(folder: str, images: list, repeat: int) -> dict:
    n = len(images)
    cache = FilterCache(folder, {"bench": True})
    t0 = time.perf_counter()
    for i, img in enumerate(images):
        cache.store(i, img, float(i), 0.0)
    write = time.perf_counter() - t0
    counted = FilterCache(folder, {"bench": True})
    calls = count_requests(counted)
    for i in range(n):
        counted.load(i, 3)
    requests_one = len(calls)
    calls.clear()
    counted.load_many(range(n), 3)
    requests_many = len(calls)
    one, many = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        hits = [cache.load(i, 3) for i in range(n)]
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        found = cache.load_many(range(n), 3)
        many.append(time.perf_counter() - t0)
        assert all(h is not None for h in hits) and len(found) == n
    return {"write_ms_per_filter": 1000 * write / n, "load_s": min(one), "load_many_s": min(many),
            "load_requests": requests_one if hasattr(counted._store, "fs") else None,
            "load_many_requests": requests_many if hasattr(counted._store, "fs") else None}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filters", type=int, default=512)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", action="append", default=[], help="another fsspec URL to measure (repeatable)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    images = pictures(args.filters, args.size)
    tmp = tempfile.mkdtemp(prefix="kv-cache-bench-")
    locations = {"local": os.path.join(tmp, "c"), "memory://": f"memory://kv-cache-bench-{os.getpid()}/c",
                 **{u: u.rstrip("/") + f"/kv-cache-bench-{os.getpid()}" for u in args.url}}
    figures = {"filters": args.filters, "size": args.size, "load_average": os.getloadavg(),
               "machine": platform.processor() or platform.machine()}
    try:
        for name, folder in locations.items():
            figures[name] = bench(folder, images, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.filters} filters of {args.size} px, best of {args.repeat}; load average "
          f"{' '.join(f'{x:.2f}' for x in figures['load_average'])}")
    print(f"{'where':<12} {'write ms/filter':>15} {'load() all, s':>14} {'load_many, s':>13} {'speed-up':>8} "
          f"{'requests: load()':>16} {'load_many':>9}")
    for name in locations:
        f = figures[name]
        req = "" if f["load_requests"] is None else f"{f['load_requests']:>16} {f['load_many_requests']:>9}"
        print(f"{name:<12} {f['write_ms_per_filter']:>15.2f} {f['load_s']:>14.3f} {f['load_many_s']:>13.3f} "
              f"{f['load_s'] / f['load_many_s']:>7.2f}x {req}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=1)
    return figures


if __name__ == "__main__":
    main()
