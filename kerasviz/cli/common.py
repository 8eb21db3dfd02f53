"""What every command shares.

The model arguments, filter and weights parsing, the writable-path probe and the usage error.
"""

from __future__ import annotations

import argparse
import os

EXIT_USAGE = 2


class UsageError(ValueError):
    """A command-line argument that cannot be used."""


LAYER_HELP = "a layer, by name or nested path (list them: kerasviz layers MODEL)"
SEED_HELP = "random seed: the same seed gives the same pixels (default: 0)"


def add_seed_arg(p: argparse.ArgumentParser) -> None:
    """`--seed`: the seed of every random draw of the command's pictures."""
    p.add_argument("--seed", type=int, default=0, help=SEED_HELP)


def parse_filters(text: str | None) -> list[int] | str | None:
    """`"0-63"`, `"0,3,5-7"` or `"all"` -> filter indices (or `"all"`); None (the option not given) stays None:
    the API's default, the first 64 filters clipped to the layer's channels."""
    if text is None:
        return None
    text = text.strip()
    if text == "all":
        return "all"
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                if int(hi) < int(lo):
                    raise UsageError(f"--filters range {part!r} runs backwards.")
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
    except ValueError as e:
        if isinstance(e, UsageError):
            raise
        raise UsageError(f"--filters must look like '0-63', '0,3,5-7' or 'all'. Received: {text!r}.") from e
    return out


def parse_weights(text: str | None):
    if text is None or text.lower() == "none":
        return None
    return text


def add_model_args(p: argparse.ArgumentParser, *, weights_default: str | None = "imagenet") -> None:
    """The model argument and the options that say how to read it: `--weights`, `--input-range`, `--preprocess`,
    `--other-input`."""
    p.add_argument("model", help="a keras.applications name (e.g. VGG16), a KerasHub preset (resnet_50_imagenet, "
                                 "hf://..., a preset folder) or a model file (.keras, .h5, .hdf5)")
    p.add_argument("--weights", default=weights_default,
                   help="imagenet, none, hed (VGG16, offline) or a weights file path "
                        f"(default: {weights_default})")
    scaling = p.add_mutually_exclusive_group()
    scaling.add_argument("--input-range", nargs=2, type=float, metavar=("LOW", "HIGH"), default=None,
                         help="the range of the model's inputs, for a model that takes scaled images (e.g. -1 1)")
    scaling.add_argument("--preprocess", default=None,
                         help="the model's preprocessing family: caffe, tf, torch or none (default: the model's own)")
    p.add_argument("--other-input", action="append", default=None, metavar="NAME=FILE.npy",
                   help="for a model with several inputs: the value (one example, no batch axis, in a .npy file) an "
                        "input other than the image is held at; repeat for each (default: zeros, with a note, where "
                        "the layer depends on it)")


def parse_other_inputs(items: list[str] | None) -> dict | None:
    """`--other-input NAME=FILE.npy` options as `{name: array}`, or None when there are none."""
    if not items:
        return None
    import numpy as np

    values = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--other-input must be NAME=FILE.npy (an input's name and a .npy file of one example). "
                             f"Received: {item!r}.")
        try:
            values[name] = np.load(path)
        except (OSError, ValueError) as e:
            raise UsageError(f"--other-input {item!r}: cannot read {path!r} as a .npy file ({e}).") from e
    return values


PRECISIONS = ("float32", "bfloat16", "auto")  # engine.presets.PRECISIONS, without importing the engine


def add_precision_arg(p: argparse.ArgumentParser) -> None:
    """`--precision`: what the feature extractor computes in (the `Preset.precision` override)."""
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="what the model computes in: auto (the presets' default: bfloat16 where the hardware "
                        "runs it fast, float32 elsewhere; keras-io stays float32), float32 or bfloat16 (images and "
                        "scores stay float32)")


PARAMS = ("pixel", "fourier", "maco")  # engine.params.PARAMS, without importing the engine


def add_param_arg(p: argparse.ArgumentParser) -> None:
    """`--param`: the image parameterization (the `Preset.param` override)."""
    p.add_argument("--param", default=None, choices=PARAMS,
                   help="how the picture is parameterized: fourier (the presets' default), pixel, or maco (the "
                        "Fourier phase only, the magnitude fixed to natural photos'; --preset maco adds its crops)")


def load_network(args):
    """The `Network` the model arguments of `add_model_args` name."""
    from kerasviz import nets

    return nets.as_network(args.model, weights=parse_weights(args.weights), preprocess=args.preprocess,
                           input_range=tuple(args.input_range) if args.input_range else None,
                           other_inputs=parse_other_inputs(getattr(args, "other_input", None)))


def run_options(args) -> dict:
    """The options every optimizing command passes on as they are (`--preset`, `--param`, `--size`, `--steps`,
    `--precision`, `--seed`, `--batch-size`, `--cache-dir` where the command has them): those given, by keyword."""
    names = ("preset", "param", "size", "steps", "precision", "seed", "batch_size", "cache_dir")
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def check_writable(path: str) -> None:
    """Fail early, before any work, when `path` cannot be written (root ignores permission bits, so
    the folder is probed with a real temporary file)."""
    import tempfile

    parent = os.path.dirname(os.path.abspath(path)) or "."
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UsageError(f"Cannot write {path!r}: {probe!r} is a file, not a folder.")
    try:
        with tempfile.NamedTemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise UsageError(f"Cannot write {path!r}: {probe!r} is not writable ({e.strerror}).") from e


LOCAL_RAY = "local"  # `--ray` without a value


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """`--ray [ADDRESS]`, `--ray-gpus N`, `--ray-cpus N`: run the batches on a Ray cluster."""
    p.add_argument("--ray", nargs="?", const=LOCAL_RAY, default=None, metavar="ADDRESS",
                   help="run the batches on Ray workers: alone, a local Ray on this machine (every core); or the "
                        "cluster at ADDRESS (auto, host:6379, ray://host:10001). Needs pip install "
                        "'kerasviz[ray]' and a --cache-dir every worker can reach")
    p.add_argument("--ray-gpus", type=float, default=None, metavar="N",
                   help="GPUs per Ray worker, fractions allowed (default: 0)")
    p.add_argument("--ray-cpus", type=float, default=None, metavar="N",
                   help="CPUs per Ray worker, fractions allowed (default: 1)")


def ray_cluster(args):
    """The `kv.distribute.Ray` the Ray arguments describe, or None without `--ray`."""
    if args.ray is None:
        if args.ray_gpus is not None or args.ray_cpus is not None:
            raise UsageError("--ray-gpus and --ray-cpus need --ray (e.g. --ray auto --ray-gpus 1).")
        return None
    from kerasviz.engine.distribute import Ray

    options = {k: v for k, v in (("num_gpus", args.ray_gpus), ("num_cpus", args.ray_cpus)) if v is not None}
    try:
        return Ray(address=None if args.ray == LOCAL_RAY else args.ray, **options)
    except ValueError as e:
        raise UsageError(str(e).replace("Ray(num_gpus", "--ray-gpus (").replace("Ray(num_cpus", "--ray-cpus (")) from e


FIGURE_DPI = 120  # dots per inch of the figures the commands write


def save_figure(fig, path: str) -> None:
    """Write a matplotlib figure to `path`; a path that cannot be written is a ValueError (exit 2)."""
    try:
        fig.savefig(path, dpi=FIGURE_DPI)
    except (OSError, ValueError) as e:
        raise ValueError(f"Cannot write the figure to {path!r}: {e}. Use a path ending in .png, .pdf or "
                         ".svg.") from e


def add_extra_tokens_arg(p) -> None:
    """`--extra-tokens N`: the class and register tokens before a token layer's patch tokens."""
    p.add_argument("--extra-tokens", type=int, default=None, metavar="N",
                   help="for a transformer's token layer: the class and register tokens before the patch tokens "
                        "(default: read from the token count against the patch grid)")
