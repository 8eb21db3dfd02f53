"""Presets: named bundles of optimization settings. Every field can be overridden per call."""

from __future__ import annotations

import dataclasses

import numpy as np

from kerasviz import names
from kerasviz.engine import params, transforms, updates


@dataclasses.dataclass(frozen=True)
class Preset:
    """Settings of a filter visualization run.

    Attributes:
        size: final image size in pixels (square).
        steps: optimization steps per octave: one int for every octave, or a tuple with one count per
            octave (e.g. `(8, 12, 16, 24)`: more steps in the later, larger rounds).
        lr: learning rate (in the units of the space optimized).
        param: the parameterization (`params.Pixel`, `params.Fourier`, `params.Maco`, or a name).
        transforms: random transforms applied before the model at each step.
        update: the update rule: `"l2"`, `"rms"` or `"adam"`.
        octaves: number of scales; the image grows by `octave_scale` between them.
        octave_scale: growth factor between octaves (the fastai notebook: 1.2).
        octave_blur: Gaussian blur sigma (px) applied between octaves; 0 for none.
        border: activation positions dropped at each border in the channel objective.
        pre_activation: optimize the value before a fused ReLU (made leaky), and a GELU or swish kept from
            falling below its minimum (`nets.PreActivation`).
        input_space: optimize the model's input directly (no preprocessing; the keras.io tutorial).
        deprocess: `"clip"` ([0, 1] images to uint8) or `"normalize"` (the tutorial's mean/std).
        deprocess_std: standard deviation for `"normalize"`.
        crop: pixels cropped at each border of the returned images.
        revive_steps: extra steps for the filters that still score <= 0 at the end (their ReLU output is
            zero everywhere): the center neuron is optimized without transforms, starting from the image
            reached, and the new image is kept where that neuron ends above zero or the score is higher.
            With `pre_activation`, the neuron's linear value before the ReLU is optimized
            (`nets.undo_leak`): the leaky value's slope jumps 100-fold at zero and Adam then stalls
            there. The steps see only the window around the neuron's receptive field
            (`kerasviz.engine.render.revive_window`), which gives the same gradient for less compute. 0 turns it off.
        revive_lr: the learning rate of those extra steps (Adam).
        precision: what the feature extractor computes in: `"float32"`, `"bfloat16"` (a copy of the extractor
            under Keras's `mixed_bfloat16` policy, reading the model's own weights) or `"auto"` (bfloat16 where
            the hardware runs it fast, float32 elsewhere, see `resolve_precision`). The parameterization,
            transforms, update rule, scores and returned images stay float32 in every case. Defaults to
            `"auto"` (why: docs/speed.md, "Why auto is the default"); `keras-io` stays `"float32"` (it
            reproduces the tutorial exactly).
    """

    size: int = 128
    steps: int | tuple[int, ...] = 64
    lr: float = 0.05
    param: object = dataclasses.field(default_factory=params.fourier)
    transforms: tuple = dataclasses.field(default_factory=lambda: tuple(transforms.standard_transforms()))
    update: str | updates.Update = "adam"
    octaves: int = 1
    octave_scale: float = 1.2
    octave_blur: float = 0.0
    border: int = 0
    pre_activation: bool = True
    input_space: bool = False
    deprocess: str = "clip"
    deprocess_std: float = 0.15
    crop: int = 0
    revive_steps: int = 0
    revive_lr: float = 0.05
    precision: str = "auto"


PRECISIONS = ("float32", "bfloat16", "auto")


def resolve_precision(precision: str) -> str:
    """`"float32"` or `"bfloat16"` from a `Preset.precision`: `"auto"` is bfloat16 where the device the backend
    computes on runs it fast (`backend.bfloat16_is_fast`: a CPU with AVX512-BF16 or AMX, a GPU of compute
    capability >= 8.0, a TPU), float32 elsewhere.

    Args:
        precision: `"float32"`, `"bfloat16"` or `"auto"` (case-insensitive; `"bf16"`, `"fp32"` too).

    Returns:
        `"float32"` or `"bfloat16"`.

    Raises:
        ValueError: another value (the message suggests close names).

    Example:
    >>> kv.presets.resolve_precision("auto") in ("float32", "bfloat16")
    True
    """
    aliases = {"fp32": "float32", "bf16": "bfloat16"}
    if not isinstance(precision, str):
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}. Received: "
                         f"precision={precision!r}.")
    value = aliases.get(precision.strip().lower(), precision.strip().lower())
    if value not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}.{names.did_you_mean(precision, PRECISIONS)} precision "
                         f"must be one of {', '.join(map(repr, PRECISIONS))}.")
    if value == "auto":
        from kerasviz.engine import backend  # imports Keras: only when asked

        return "bfloat16" if backend.bfloat16_is_fast() else "float32"
    return value


def _presets() -> dict[str, Preset]:
    return {
        # The keras.io tutorial, exactly: model-input space, 180 px, 30 steps of lr 10 on the
        # L2-normalized gradient, 2 border positions dropped, mean/std deprocess, 25 px crop.
        "keras-io": Preset(
            size=180, steps=30, lr=10.0,
            param=params.pixel(init="uniform", scale=0.25, sigmoid=False, decorrelate=False),
            transforms=(), update="l2", border=2, pre_activation=False, input_space=True,
            deprocess="normalize", deprocess_std=0.15, crop=25,
            precision="float32",  # it reproduces the tutorial exactly (the default is "auto")
        ),
        # Chollet's 2016 blog: gray + noise, RMS-normalized gradient, 40 steps of one gray level.
        "blog2016": Preset(
            size=128, steps=40, lr=1.0 / 255.0,
            param=params.pixel(init="uniform", scale=20.0 / 255.0, offset=0.5, sigmoid=False,
                               decorrelate=False),
            transforms=(), update="rms", pre_activation=False, deprocess="normalize",
            deprocess_std=0.1,
        ),
        # Quick and robust: Fourier + decorrelated color + two jitters (Lucid's standard set's, 8 then 4 px at
        # 128 px and in proportion below, without its scale and rotation), few steps (how they were chosen:
        # docs/speed.md, "The presets").
        "fast": Preset(size=96, steps=48, lr=0.05, transforms=(
            transforms.jitter(8, reference_size=transforms.REFERENCE_SIZE),
            transforms.jitter(4, reference_size=transforms.REFERENCE_SIZE)), revive_steps=64),
        # Lucid's recipe: Fourier + decorrelated color + standard transforms + Adam, many steps.
        "lucid": Preset(size=128, steps=256, lr=0.05, revive_steps=64),
        # The default: Lucid's pipeline on four octaves (47, 65, 91, 128 px) of 16 steps at lr 0.1, about 30
        # full-size steps of compute, fewer than the 2016 recipe's 40 plain steps, with Lucid's robustness
        # (measured: docs/speed.md, "The presets"). 64 revive steps: HED block3_conv3 filter 4, zero on every
        # photo, crosses zero after about 40.
        "quality": Preset(size=128, steps=16, lr=0.1, octaves=4, octave_scale=1.4, revive_steps=64),
        # MACO (Fel et al., 2023): the phase optimized, the magnitude fixed to natural photos', 4 noisy crops of
        # half to nine tenths of the 128 px canvas per step, seen at 96 px, NAdam at lr 1.0 (xplique, Horama);
        # the transparency map in Result.alpha. Measured against quality: docs/maco.md.
        "maco": Preset(size=128, steps=64, lr=1.0, param=params.maco(),
                       transforms=(transforms.crops(4, (0.5, 0.9), output=0.75),), update="nadam", revive_steps=64),
    }


PRESETS = _presets()
DEFAULT_PRESET = "quality"


def octave_steps(settings: Preset) -> list[int]:
    """The steps of each octave of `settings`, first (smallest) octave first.

    Args:
        settings: a `Preset`.

    Returns:
        A list of `settings.octaves` ints.

    Example:
    >>> kv.presets.octave_steps(kv.Preset(steps=(8, 24), octaves=2))
    [8, 24]
    >>> kv.presets.octave_steps(kv.presets.get("quality"))
    [16, 16, 16, 16]
    """
    if isinstance(settings.steps, tuple):
        return [int(n) for n in settings.steps]
    return [int(settings.steps)] * settings.octaves


def get(preset: str | Preset | None) -> Preset:
    """A preset by name (case/punctuation-insensitive) or a `Preset`; None gives the default.

    Args:
        preset: `"quality"`, `"fast"`, `"lucid"`, `"maco"`, `"keras-io"` or `"blog2016"`, a `Preset` (returned as is),
            or None for `"quality"`.

    Returns:
        A `Preset`.

    Raises:
        ValueError: an unknown name (the message suggests close ones).

    Example:
    >>> kv.presets.get("Keras IO").update
    'l2'
    """
    if preset is None:
        preset = DEFAULT_PRESET
    if isinstance(preset, Preset):
        return preset
    return PRESETS[names.lookup(preset, PRESETS, "preset")]


def list_presets() -> list[str]:
    """Names of the built-in presets.

    Returns:
        A list of str.

    Example:
    >>> "quality" in kv.list_presets()
    True
    """
    return list(PRESETS)


def resolve_settings(preset: str | Preset | None, overrides: dict) -> Preset:
    """A preset with the overrides given (None values are ignored), checked.

    Args:
        preset: a preset name, a `Preset`, or None for the default.
        overrides: `Preset` fields to replace, e.g. `dict(size=64, steps=(8, 16))` (a tuple of steps also
            sets `octaves`; a new `size` scales the preset's crop).

    Returns:
        A `Preset`.

    Raises:
        ValueError: an unknown preset, or a field out of range (steps, octave_blur, revive_steps, size, crop,
            precision; `"auto"` is resolved to `"float32"` or `"bfloat16"`, see `resolve_precision`).
        TypeError: an override that is no `Preset` field (the message suggests close names).

    Example:
    >>> kv.presets.resolve_settings("fast", dict(steps=(8, 16), size=None)).octaves
    2
    """
    fields = [f.name for f in dataclasses.fields(Preset)]
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        raise TypeError(f"Unknown setting {unknown[0]!r}.{names.did_you_mean(unknown[0], fields)} Settings are the "
                        f"Preset fields: {', '.join(fields)}.")
    base = get(preset)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "transforms" in given:
        given["transforms"] = tuple(given["transforms"])
    if "param" in given:
        given["param"] = params.get(given["param"])
    if "update" in given and not isinstance(given["update"], str):
        given["update"] = updates.get(given["update"])  # a keras optimizer gets wrapped
    if isinstance(given.get("steps"), (list, tuple)):  # one count per octave
        given["steps"] = tuple(given["steps"])
        given.setdefault("octaves", len(given["steps"]))
    if "size" in given and "crop" not in given and base.crop and isinstance(given["size"], (int, np.integer)):
        given["crop"] = int(round(base.crop * given["size"] / base.size))  # the crop scales with the image
    s = dataclasses.replace(base, **given)
    counts = s.steps if isinstance(s.steps, tuple) else (s.steps,)
    if not counts or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in counts):
        raise ValueError("steps must be a positive int, or a tuple of positive ints (one per octave). "
                         f"Received: steps={s.steps!r}.")
    if isinstance(s.steps, tuple) and len(s.steps) != s.octaves:
        raise ValueError(f"steps gives {len(s.steps)} counts, one per octave, but octaves={s.octaves}. Pass "
                         f"{s.octaves} counts, or one int for every octave.")
    if not isinstance(s.octave_blur, (int, float, np.number)) or s.octave_blur < 0:
        raise ValueError(f"octave_blur must be a number >= 0 (pixels; 0 for none). Received: "
                         f"octave_blur={s.octave_blur!r}.")
    if not isinstance(s.revive_steps, (int, np.integer)) or s.revive_steps < 0:
        raise ValueError(f"revive_steps must be an int >= 0. Received: revive_steps={s.revive_steps!r}.")
    if not isinstance(s.size, (int, np.integer)) or s.size < 8:
        raise ValueError(f"size must be an int >= 8 (pixels). Received: size={s.size!r}.")
    if s.crop and 2 * s.crop >= s.size:
        raise ValueError(f"crop={s.crop} leaves nothing of a {s.size} px image.")
    return dataclasses.replace(s, precision=resolve_precision(s.precision))


def jsonable(value):
    """`value` as JSON data: numbers, strings, lists and dicts as they are, NumPy scalars as numbers,
    anything else by its `repr`."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def to_dict(settings: Preset) -> dict:
    """The fields of `settings` as JSON data: the parameterization and update rule by their `repr`, the
    transforms by their names. What results and the atlas cache record.

    Args:
        settings: a `Preset`.

    Returns:
        A dict with one entry per `Preset` field.

    Example:
    >>> kv.presets.to_dict(kv.presets.get("fast"))["transforms"]
    ['jitter(8, reference_size=128)', 'jitter(4, reference_size=128)']
    """
    fields = {f.name: jsonable(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    fields["param"] = repr(settings.param)
    fields["transforms"] = [t.name for t in settings.transforms]
    return fields
