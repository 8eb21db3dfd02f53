"""Activation-atlas icons per second: batched through one plan (what `kv.activation_atlas` does) against one call
per icon.

    python benchmarks/activation_atlas.py [--model planted|VGG16] [--icons 32] [--size 48] [--steps 32]

The directions are cell means of a real atlas's map (`planted`: the planted-parts CNN of tests/planted.py, trained
in seconds, layer conv3; `VGG16`: weights "hed", block4_conv3 over skimage's photos). Three ways, the same icons:

- batched: one `optimize.plan` with `activation_atlas.icon_objective`, every icon in one compiled batch (timed
  after a first run that compiles: icons/s of the steady state, and of the first run with its compilation);
- one plan, one icon per chunk: the same compiled step with batch_size=1;
- one call per icon: `kv.render(model, objectives.direction(layer, v, cosine_power=2))` per icon, what a user
  writing the loop by hand does (each call builds its own plan and compiled step), timed over `--single` icons.

Prints icons/s for each and the speed-up of batching, with the machine's load (`os.getloadavg`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # planted.py


def _directions(net, layer: str, images, k: int, seed: int = 0):
    """`k` cell means of a small atlas's map (sample, UMAP, grid): real directions of the layer."""
    import numpy as np

    from kerasviz.concepts import activation_atlas as aa
    from kerasviz.concepts.sampling import sample_activations

    samples = sample_activations(net, layer, images, budget=2000, seed=seed)
    cells = aa.grid_cells(aa.layout(samples.vectors, seed=seed), 8, 2)
    means = np.stack([samples.vectors[m].mean(axis=0) for _, _, m in cells]).astype("float32")
    return np.resize(means, (k, means.shape[1]))  # repeated where the map has fewer cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="planted", choices=("planted", "VGG16"))
    parser.add_argument("--icons", type=int, default=32)
    parser.add_argument("--single", type=int, default=4, help="icons timed one call each (default: 4)")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()

    import numpy as np

    import kerasviz as kv
    from kerasviz import optimize
    from kerasviz.concepts import activation_atlas as aa

    if args.model == "planted":
        import planted

        model, _ = planted.trained_planted_model()
        net, layer = kv.as_network(model, input_range=(0, 1)), planted.LATE_LAYER
        images = planted.planted_data(256, seed=7)[0]
    else:
        from skimage import data

        net, layer = kv.get_model("VGG16", weights="hed"), "block4_conv3"
        photos = [kv.images.resize(getattr(data, n)().astype("float32") / 255, (128, 128))
                  for n in ("astronaut", "chelsea", "coffee", "rocket")]
        images = np.stack(photos)
    directions = _directions(net, layer, images, args.icons)
    settings = dict(preset="fast", size=args.size, steps=args.steps)
    k = len(directions)

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    batched = optimize.plan(net, objective=aa.icon_objective(layer, directions), filters=range(k), batch_size=k,
                            **settings)
    first = timed(batched.run)
    steady = timed(batched.run)
    one = optimize.plan(net, objective=aa.icon_objective(layer, directions), filters=range(k), batch_size=1,
                        **settings)
    one.run([0])  # compiles the batch-1 step
    chunked = timed(lambda: one.run(range(args.single)))
    single = timed(lambda: [kv.render(net, kv.objectives.direction(layer, v, cosine_power=aa.COSINE_POWER),
                                      progress=False, **settings) for v in directions[:args.single]])
    load = os.getloadavg()[0]
    print(f"{net.name} {layer}: {k} icons of {args.size} px, {args.steps} steps (preset fast); load {load:.1f}")
    print(f"  batched, one plan:           {k / steady:7.2f} icons/s  (first run with its compilation: "
          f"{k / first:.2f} icons/s)")
    print(f"  one plan, one icon a chunk:  {args.single / chunked:7.2f} icons/s")
    print(f"  one kv.render call per icon: {args.single / single:7.2f} icons/s")
    print(f"  batched / one call per icon: {(k / steady) / (args.single / single):.1f}x steady, "
          f"{(k / first) / (args.single / single):.1f}x counting the batch's compilation")


if __name__ == "__main__":
    main()
