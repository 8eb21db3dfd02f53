"""Resident memory over re-runs of a notebook cell (issue: a model let go is never freed).

The cell loads VGG16 (HED weights, offline), visualizes 4 filters of block2_conv2 and drops the model:

    net = kv.get_model("VGG16", weights="hed")
    kv.visualize_filters(net, "block2_conv2", filters=range(4), preset="fast", size=48, steps=8, progress=False)
    del net; gc.collect()

Prints the resident memory after each run; goal: flat within 5% after the second run. Then the other
direction: 50 calls of visualize_filters with new filters on one model, the memory and seconds per call.

    python benchmarks/memory.py [--runs 20] [--calls 50]
"""

import argparse
import gc
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    import kerasviz as kv

    sizes = []
    for i in range(args.runs):
        net = kv.get_model("VGG16", weights="hed")
        kv.visualize_filters(net, "block2_conv2", filters=range(4), preset="fast", size=48, steps=8, progress=False)
        del net
        gc.collect()
        sizes.append(rss_mib())
        print(f"run {i + 1:2d}: {sizes[-1]:7.0f} MiB", flush=True)
    if len(sizes) > 2:
        drift = (max(sizes[1:]) - sizes[1]) / sizes[1]
        print(f"after the second run: {sizes[1]:.0f} -> max {max(sizes[1:]):.0f} MiB ({100 * drift:+.1f}%)")
    net = kv.get_model("VGG16", weights="hed")
    for i in range(args.calls):
        t0 = time.perf_counter()
        kv.visualize_filters(net, "block2_conv2", filters=[i % 128], preset="fast", size=48, steps=8, progress=False)
        if i % 10 == 0 or i == args.calls - 1:
            print(f"call {i + 1:2d}: {time.perf_counter() - t0:5.2f} s, {rss_mib():7.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
