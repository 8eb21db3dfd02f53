"""What a run returns (`Result`), how its images are made from the optimized values (`deprocess`), and what
it says when it is not what the user asked for: interrupted, or holding dead or flat filters (`check`,
`report`)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from kerasviz import images, nets
from kerasviz.engine import presets

# A picture whose uint8 pixels vary by less than this (their standard deviation) is flat: nearly one color.
FLAT_STD = 2.0


@dataclasses.dataclass
class Result:
    """What a visualization run returns: data, no drawing.

    Only filters that ran all their steps are in it: after an interruption (Ctrl-C) the others are listed in
    `unfinished`, so every image is a finished picture.

    Attributes:
        images: uint8 `(N, H, W, C)`, ready to save or stitch.
        scores: float32 `(N,)`, each image's final score (its objective on the final image,
            without transforms); the layer's activations are `kv.activations`.
        history: float32 `(steps, N)`, the score at every step (with that step's transforms).
        filters: the filter index (or key) of each image.
        layer: the layer name, when one layer was visualized.
        raw: float32 images before deprocessing: [0, 1] images, or model inputs for
            `input_space` presets.
        settings: the settings used (preset fields, seed, model, objective).
        seconds: wall time of the run.
        clipped: share of pixels clipped when converting to uint8.
        interrupted: True when the run was stopped early (Ctrl-C); the filters finished are kept.
        unfinished: the filters (or keys) asked for that did not run all their steps (after an interruption),
            and so have no image here.
        revived: the filters whose image came from the revive steps (see `Preset.revive_steps`): their
            filter stayed at zero under the main objective, so the image shows what drives its center
            neuron, without transforms.
        dead: the filters of a layer whose final score is <= 0: the picture does not make them fire (on
            average over the positions), revive steps included.
        flat: the filters whose picture is nearly one color (its uint8 pixels' standard deviation is under
            `FLAT_STD`).
        alpha: the transparency map, float32 `(N, H, W)` in [0, 1], where the param gives one (`param="maco"`,
            `preset="maco"`): the magnitude of the score's gradient with respect to each pixel, summed over the
            steps (1: the parts of the picture that mattered most; see `kerasviz.engine.render.alpha_map`);
            None otherwise.

    Example:
    >>> result = kv.visualize_filters("VGG16", "block3_conv3", 4, weights="hed", preset="fast", size=32,
    ...                               steps=2, progress=False)
    >>> result.filters, result.unfinished
    ([4], [])
    """

    images: np.ndarray
    scores: np.ndarray
    history: np.ndarray
    filters: list
    layer: str | None
    raw: np.ndarray
    settings: dict
    seconds: float = 0.0
    clipped: float = 0.0
    interrupted: bool = False
    unfinished: list = dataclasses.field(default_factory=list)
    revived: list = dataclasses.field(default_factory=list)
    dead: list = dataclasses.field(default_factory=list)
    flat: list = dataclasses.field(default_factory=list)
    alpha: np.ndarray | None = None

    def __len__(self):
        return len(self.filters)

    def __repr__(self):
        shape = "x".join(str(s) for s in self.images.shape)
        notes = "".join(f", {name}={value}" for name, value in
                        (("unfinished", self.unfinished), ("dead", self.dead), ("flat", self.flat)) if value)
        return (f"Result(layer={self.layer!r}, filters={len(self.filters)}, images={shape}, "
                f"mean score={float(np.mean(self.scores)) if len(self) else 0:.4g}{notes})")


def deprocess(raw: np.ndarray, s: presets.Preset, network) -> tuple[np.ndarray, float]:
    """`(uint8 images, share of pixels clipped)` of the optimized `raw` images, as `s.deprocess` says."""
    if s.input_space and isinstance(network.preprocess, nets.Preprocessing) and network.preprocess.bgr:
        raw = raw[..., ::-1]  # show caffe models' BGR inputs as RGB
    if s.deprocess == "normalize":
        return images.deprocess(raw, std=s.deprocess_std, crop=s.crop), _clipped_normalized(raw, s)
    if s.deprocess == "clip":
        cropped = images.center_crop(raw, border=s.crop) if s.crop else raw
        return images.to_uint8(cropped), float(np.mean((cropped < 0) | (cropped > 1)))
    raise ValueError(f"deprocess must be 'clip' or 'normalize'. Received: {s.deprocess!r}.")


def crop_alpha(alphas: list, s: presets.Preset) -> np.ndarray | None:
    """The chunks' transparency maps as one `(N, H, W)` array, cropped as the pictures are (`s.crop`); None
    when the run made none."""
    if not alphas or any(a is None for a in alphas):
        return None
    alpha = np.concatenate(alphas)
    return np.ascontiguousarray(images.center_crop(alpha[..., None], border=s.crop)[..., 0]) if s.crop else alpha


def _clipped_normalized(raw, s):
    axes = (1, 2, 3)
    x = (raw - raw.mean(axis=axes, keepdims=True)) / (raw.std(axis=axes, keepdims=True) + 1e-5)
    x = x * s.deprocess_std + 0.5
    return float(np.mean((x < 0) | (x > 1)))


def check(filters: list, pictures: np.ndarray, scores: np.ndarray, *, layer: str | None) -> tuple[list, list]:
    """`(dead, flat)`: the filters whose score is <= 0 (only for a layer's filters: other objectives may
    score below zero by design) and those whose uint8 picture is nearly one color.

    Example:
    >>> from kerasviz.engine.result import check
    >>> pictures = np.zeros((2, 8, 8, 3), "uint8"); pictures[1, ::2] = 255
    >>> check([3, 5], pictures, np.array([0.5, -0.1]), layer="conv")
    ([5], [3])
    """
    std = pictures.reshape(len(pictures), -1).std(axis=1) if len(pictures) else np.zeros(0)
    dead = [f for f, s in zip(filters, scores, strict=True) if s <= 0] if layer is not None else []
    flat = [f for f, v in zip(filters, std, strict=True) if v < FLAT_STD]
    return dead, flat


def bad_line(n: int, dead: list, flat: list, where: str = "", what: str = "filters") -> str | None:
    """The one line naming the dead and flat filters (or images) among `n`, or None where there are none."""
    bad = list(dict.fromkeys([*dead, *flat]))
    if not bad:
        return None
    parts = [f"dead (final score <= 0: the picture does not make them fire): {_listed(dead)}" if dead else "",
             f"flat (a nearly uniform picture): {_listed(flat)}" if flat else ""]
    return (f"{len(bad)} of {n} {what}{where} are not what was asked: {'; '.join(p for p in parts if p)}. They "
            "are listed in .dead and .flat; more steps or another seed may help, some filters never fire.")


def _listed(filters: list, most: int = 12) -> str:
    shown = ", ".join(str(f) for f in filters[:most])
    return shown + (f" and {len(filters) - most} more" if len(filters) > most else "")


def report(result: Result, stacklevel: int = 3) -> None:
    """Warn, one line each, when `result` was interrupted and when it holds dead or flat filters."""
    what = "filters" if result.layer is not None else "images"
    if result.interrupted:
        n = len(result.filters) + len(result.unfinished)
        warnings.warn(f"Interrupted: {len(result.filters)} of {n} {what} finished; returning those "
                      f"(.unfinished lists the others).", stacklevel=stacklevel)
    line = bad_line(len(result.filters), result.dead, result.flat,
                    f" of {result.layer!r}" if result.layer is not None else "", what)
    if line is not None:
        warnings.warn(line, stacklevel=stacklevel)
