"""The streamed activation pass of concepts and activation atlases: speed against a plain forward loop, and memory
flat in the number of images (issue #29, item 6).

`kv.sample_activations` streams the images through the model and keeps a seeded bottom-k sample of the layer's
spatial vectors. This script measures, for the same model, layer, batch size and images:

- images/s of the streamed pass (data source, preprocessing, forward pass, sampling) against a plain loop of
  `extractor.predict_on_batch` over the same batches (the goal: >= 0.8x);
- the peak resident memory of a fresh process that streams 1,000 and one that streams 10,000 images (the goal:
  flat: the sample is `budget` vectors plus one batch, whatever the count).

The images come from a generator of seeded uint8 batches (an iterable: nothing is held), so the memory is the
pass's own. Each count runs in its own process, so peak RSS (`ru_maxrss`) is that count's alone.

    python benchmarks/concepts.py [--model VGG16 --weights hed --layer block3_conv3 --size 32 --batch 32
                                   --budget 50000 --counts 1000 10000]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def batches(count: int, batch: int, size: int, seed: int = 0):
    """`count` seeded uint8 images, `batch` at a time, made on the fly."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for start in range(0, count, batch):
        yield rng.integers(0, 256, (min(batch, count - start), size, size, 3), dtype=np.uint8)


def one_count(args) -> dict:
    """Stream `args.count` images in this process: the sampler's and the plain loop's seconds, and peak RSS."""
    import numpy as np

    import kerasviz as kv
    from kerasviz import nets

    net = kv.get_model(args.model, weights=args.weights)
    path, _ = nets.find_layer(net, args.layer)
    extractor = nets.get_extractor(net, [path], False)
    warm = next(batches(args.batch, args.batch, args.size))
    extractor.predict_on_batch(net.preprocess(warm.astype("float32") / 255.0))  # trace once for both
    kv.sample_activations(net, path, [warm], budget=10)
    start = time.perf_counter()
    for x in batches(args.count, args.batch, args.size):
        np.asarray(extractor.predict_on_batch(np.asarray(net.preprocess(x.astype("float32") / 255.0))))
    plain = time.perf_counter() - start
    start = time.perf_counter()
    samples = kv.sample_activations(net, path, batches(args.count, args.batch, args.size), budget=args.budget,
                                    batch_size=args.batch)
    streamed = time.perf_counter() - start
    return dict(count=args.count, plain_s=plain, streamed_s=streamed, vectors=len(samples),
                peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="VGG16")
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--layer", default="block3_conv3")
    parser.add_argument("--size", type=int, default=32, help="image side (default: 32, for a CPU)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--budget", type=int, default=50_000, help="below the positions of the smallest count")
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--count", type=int, default=None, help=argparse.SUPPRESS)  # one count, in a child process
    args = parser.parse_args()
    if args.count is not None:
        print(json.dumps(one_count(args)))
        return
    print(f"{args.model} ({args.weights}) {args.layer}, {args.size}px images, batch {args.batch}, "
          f"budget {args.budget:,}; load: {os.getloadavg()[0]:.1f}")
    for count in args.counts:
        child = [sys.executable, __file__, "--model", args.model, "--weights", args.weights, "--layer", args.layer,
                 "--size", str(args.size), "--batch", str(args.batch), "--budget", str(args.budget),
                 "--count", str(count)]
        out = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(f"{count:6,d} images: streamed {count / out['streamed_s']:7.1f} images/s, plain forward loop "
              f"{count / out['plain_s']:7.1f} images/s ({out['plain_s'] / out['streamed_s']:.2f}x), "
              f"{out['vectors']:,} vectors kept, peak RSS {out['peak_rss_mib']:.0f} MiB "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
