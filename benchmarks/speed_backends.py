"""The same filter visualization on each Keras backend: seconds per filter, compile time apart.

    python benchmarks/speed_backends.py                        # all three backends, one subprocess each
    python benchmarks/speed_backends.py --backend jax          # one backend, in this process
    python benchmarks/speed_backends.py --filters 64 --size 128 --steps 48 --repeats 3   # on a GPU

Defaults: 8 filters of VGG16 (weights=None) `block3_conv3` at 64 px, 10 steps of the "fast" preset,
in one batch. The first run traces and compiles the step; the later runs reuse it. Reported per
backend: `compile_s` (first run minus the median later run), `run_s` (median later run),
`s_per_filter` (`run_s / filters`), the device and the thread settings. The Keras backend is fixed when
keras is imported, so `--backend all` runs each backend in its own subprocess (KERAS_BACKEND set).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="all", choices=(*BACKENDS, "all"))
    parser.add_argument("--model", default="VGG16")
    parser.add_argument("--weights", default="none", help="none, hed, imagenet or a path (default: none)")
    parser.add_argument("--layer", default="block3_conv3")
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after the compiling one (default: 2)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    """Time `args.repeats + 1` runs on the backend Keras was imported with."""
    import keras

    import kerasviz as kv

    weights = None if args.weights.lower() == "none" else args.weights
    network = kv.get_model(args.model, weights=weights)
    filters = list(range(args.filters))
    plan = kv.optimize.plan(network, args.layer, filters, preset=args.preset, size=args.size, steps=args.steps,
                            batch_size=args.filters, seed=0)
    start = time.perf_counter()
    first = plan.run()
    first_s = time.perf_counter() - start
    traces = plan.renderer.traces()
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        again = plan.run()
        runs.append(time.perf_counter() - start)
    run_s = statistics.median(runs) if runs else first_s
    return {
        "backend": keras.backend.backend(),
        "device": _device(keras.backend.backend()),
        "model": args.model, "weights": args.weights, "layer": args.layer, "filters": args.filters,
        "size": args.size, "steps": args.steps, "preset": args.preset,
        "first_s": round(first_s, 3), "run_s": round(run_s, 3), "compile_s": round(max(first_s - run_s, 0.0), 3),
        "s_per_filter": round(run_s / args.filters, 4), "ms_per_step": round(1000 * run_s / args.steps, 1),
        "traces": traces, "repeatable": bool((first.images == again.images).all()) if runs else None,
        "mean_activation": float(first.scores.mean()),
        "threads": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "XLA_FLAGS") if k in os.environ},
        "python": platform.python_version(),
    }


def _device(name: str) -> str:
    if name == "jax":
        import jax

        return str(jax.devices()[0])
    if name == "torch":
        import torch

        if torch.cuda.is_available():
            return "cuda: " + torch.cuda.get_device_name(0)
        return f"cpu ({torch.get_num_threads()} threads)"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU x{len(gpus)}" if gpus else "cpu"


def run_subprocess(name: str, argv: list[str]) -> dict:
    """Run this script for one backend in a fresh interpreter and read its JSON line."""
    env = dict(os.environ, KERAS_BACKEND=name, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--backend", name],
                         env=env, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"backend": name, "error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def table(rows: list[dict]) -> str:
    head = f"{'backend':<11} {'device':<22} {'compile s':>9} {'run s':>7} {'s/filter':>9} {'ms/step':>8} {'traces':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['backend']:<11} failed: {r['error']}")
            continue
        lines.append(f"{r['backend']:<11} {r['device'][:22]:<22} {r['compile_s']:>9.2f} {r['run_s']:>7.2f} "
                     f"{r['s_per_filter']:>9.3f} {r['ms_per_step']:>8.0f} {r['traces']:>6}")
    return "\n".join(lines)


def _drop_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in names:
            skip = True
        elif not a.startswith(tuple(n + "=" for n in names)):
            out.append(a)
    return out


def main(argv=None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.backend != "all":
        if "keras" not in sys.modules:
            os.environ["KERAS_BACKEND"] = args.backend  # a script, not the library: it may choose
        result = measure(args)
        if result["backend"] != args.backend:
            raise SystemExit(f"--backend {args.backend} asked, but keras was already imported with "
                             f"{result['backend']!r}.")
        print(json.dumps(result))
        rows = [result]
    else:
        rest = _drop_options(argv, ("--backend", "--json"))
        rows = [run_subprocess(name, rest) for name in BACKENDS]
        print(f"{args.model} ({args.weights}) {args.layer}: {args.filters} filters, {args.size} px, "
              f"{args.steps} steps, preset {args.preset!r}, one batch")
        print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
