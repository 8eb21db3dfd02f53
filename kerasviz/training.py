"""Keras training callbacks: watch filters form while a model trains."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time
import warnings
from collections.abc import Sequence

import keras
import numpy as np

from kerasviz import images, optimize

GIF_FRAME_MS = 500  # how long each epoch's atlas stays on screen in the GIF
ATLAS_MARGIN = 2


@dataclasses.dataclass(frozen=True)
class AtlasFrame:
    """One atlas written by `FilterAtlas`.

    Attributes:
        epoch: the epoch it shows (1 = after the first epoch; 0 = before training).
        path: the PNG written.
        seconds: the time it took (the overhead added to training).
        mean_activation: the mean of its filters' final scores (each the mean activation of the filter's
            channel, the default objective).
    """

    epoch: int
    path: str
    seconds: float
    mean_activation: float


class FilterAtlas(keras.callbacks.Callback):
    """Visualize filters of a layer every few epochs while training: PNG atlases, TensorBoard images and
    an animated GIF of the atlas across epochs.

    After every `every_n_epochs` epochs it runs `kv.visualize_filters` on the model being trained (the
    compiled step reads the live weights, so it is traced once and reused), saves
    `out_dir/atlas_epoch_NNN.png`, writes the atlas as a `tf.summary.image` under `out_dir/tensorboard`
    when TensorFlow is installed, and at the end of training saves `out_dir/atlas.gif`.

    Args:
        layer: the layer name.
        filters: the filter indices (a list, a range or `"all"`). Defaults to the first 16.
        every_n_epochs: epochs between atlases. Defaults to 1.
        out_dir: the folder written to. Defaults to `"kerasviz_atlas"`.
        preset: the visualization preset. Defaults to `"fast"`.
        include_initial: also draw the untrained filters before the first epoch (frame 0). Defaults
            to False.
        tensorboard: write TensorBoard image summaries (when TensorFlow is installed). Defaults to True.
        gif: write the animated GIF at the end. Defaults to True.
        **options: the options of `visualize_filters`, applied to the model being trained: `preprocess` or
            `input_range` when the model does not take [0, 1] images (defaults to what kerasviz reads from the
            model); `seed` (the same every epoch, so frames differ by the weights only; defaults to 0);
            `size` (defaults to the model's fixed input size, else the preset's), `steps`, `lr`,
            `batch_size`, ...

    Attributes:
        frames: an `AtlasFrame` per atlas written.
        gif_path: the GIF written at the end, or None.

    Example:
    >>> inputs = keras.Input((16, 16, 3))
    >>> model = keras.Sequential([inputs, keras.layers.Conv2D(4, 3, activation="relu", name="conv2"),
    ...                           keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> model.compile("adam", "mse")
    >>> atlas = kv.training.FilterAtlas("conv2", range(4), out_dir="runs/atlas", steps=2, tensorboard=False)
    >>> _ = model.fit(np.zeros((4, 16, 16, 3)), np.zeros((4, 2)), epochs=2, verbose=0, callbacks=[atlas])
    >>> atlas.gif_path
    'runs/atlas/atlas.gif'
    """

    def __init__(
        self,
        layer: str,
        filters: Sequence[int] | str | None = None,
        every_n_epochs: int = 1,
        out_dir: str | os.PathLike = "kerasviz_atlas",
        preset: str = "fast",
        *,
        include_initial: bool = False,
        tensorboard: bool = True,
        gif: bool = True,
        **options,
    ):
        super().__init__()
        if not isinstance(every_n_epochs, (int, np.integer)) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive int. Received: every_n_epochs={every_n_epochs!r}.")
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a layer name (str). Received: {type(layer).__name__}.")
        self.layer = layer
        self.filters = list(range(16)) if filters is None else (filters if isinstance(filters, str)
                                                                   else [int(f) for f in filters])
        self.every_n_epochs = int(every_n_epochs)
        self.out_dir = os.fspath(out_dir)
        self.preset = preset
        self.include_initial = include_initial
        self.tensorboard = tensorboard
        self.gif = gif
        self.options = options
        self.frames: list[AtlasFrame] = []
        self.gif_path: str | None = None
        self._atlases: list[np.ndarray] = []
        self._writer = None
        self._plan = None

    # ------------------------------------------------------------------ keras hooks

    def on_train_begin(self, logs=None):
        os.makedirs(self.out_dir, exist_ok=True)
        self.frames, self._atlases, self.gif_path = [], [], None
        options = dict(self.options)
        fixed = tuple(self.model.inputs[0].shape[1:3])
        if options.get("size") is None and None not in fixed and fixed[0] == fixed[1]:
            options["size"] = int(fixed[0])
        # resolved once (a wrong layer or option fails now, not after an epoch), run every time: the compiled
        # step reads the model's live weights
        self._plan = optimize.plan(self.model, self.layer, self.filters, preset=self.preset, **options)
        if self.tensorboard and self._writer is None:
            self._writer = _summary_writer(os.path.join(self.out_dir, "tensorboard"))
        if self.include_initial:
            self._draw(0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self._draw(epoch + 1)

    def on_train_end(self, logs=None):
        if self.gif and self._atlases:
            self.gif_path = save_gif(self._atlases, os.path.join(self.out_dir, "atlas.gif"),
                                     labels=[f"epoch {f.epoch}" for f in self.frames])
        if self._writer is not None:
            self._writer.flush()

    # ------------------------------------------------------------------ work

    def _draw(self, epoch: int) -> None:
        start = time.perf_counter()
        result = self._plan.run()
        atlas = images.stitch(result.images, margin=ATLAS_MARGIN, labels=result.filters)
        path = images.save_image(atlas, os.path.join(self.out_dir, f"atlas_epoch_{epoch:03d}.png"))
        self._atlases.append(atlas)
        if self._writer is not None:
            self._writer.image(f"kerasviz/{self.layer}", atlas, epoch)
        self.frames.append(AtlasFrame(epoch, path, time.perf_counter() - start,
                                      float(np.mean(result.scores))))

    @property
    def seconds(self) -> float:
        """Total time spent drawing atlases (the training-time overhead)."""
        return float(sum(f.seconds for f in self.frames))


class _TensorBoardWriter:
    """Writes images with `tf.summary.image`, or, when the `tensorboard` package (which implements it)
    is missing, as the same summary written by hand: a `[width, height, png]` string tensor tagged for
    TensorBoard's images plugin, which TensorBoard reads the same way."""

    def __init__(self, writer):
        self.writer = writer
        self.native = importlib.util.find_spec("tensorboard") is not None

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        import tensorflow as tf

        with self.writer.as_default():
            if self.native:
                tf.summary.image(tag, image[None], step=step)
                return
            from tensorflow.core.framework import summary_pb2

            metadata = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images"))
            png = tf.io.encode_png(image)
            tensor = tf.stack([tf.constant(str(image.shape[1])), tf.constant(str(image.shape[0])), png])
            tf.summary.write(tag, tensor, step=step, metadata=metadata)

    def flush(self) -> None:
        self.writer.flush()


def _summary_writer(log_dir: str):
    """A TensorBoard writer, or None (with a warning) when TensorFlow is not installed."""
    if importlib.util.find_spec("tensorflow") is None:
        warnings.warn("FilterAtlas: TensorFlow is not installed, so no TensorBoard summaries are written "
                      "(PNG atlases and the GIF still are). Pass tensorboard=False to silence this.", stacklevel=3)
        return None
    import tensorflow as tf

    return _TensorBoardWriter(tf.summary.create_file_writer(log_dir))


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, *, duration_ms: int = GIF_FRAME_MS,
             labels: Sequence[str] | None = None, loop: int = 0) -> str:
    """Save images as an animated GIF (frames of different sizes are padded to the largest).

    Args:
        frames: uint8 (or [0, 1] float) images `(H, W, C)`.
        path: the file to write.
        duration_ms: milliseconds per frame. Defaults to 500.
        labels: a caption per frame, drawn in the bottom-left corner. Defaults to none.
        loop: times to loop; 0 loops forever. Defaults to 0.

    Returns:
        The path written.

    Raises:
        ValueError: `frames` is empty.

    Example:
    >>> frames = [np.full((32, 32, 3), v) for v in (0.0, 0.5, 1.0)]
    >>> kv.training.save_gif(frames, "fade.gif", labels=["0", "1", "2"])
    'fade.gif'
    """
    from PIL import Image, ImageDraw

    if not frames:
        raise ValueError("save_gif needs at least one frame.")
    arrays = [np.asarray(f) if np.asarray(f).dtype == np.uint8 else images.to_uint8(f) for f in frames]
    arrays = [a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a for a in arrays]
    h = max(a.shape[0] for a in arrays)
    w = max(a.shape[1] for a in arrays)
    pictures = []
    for i, a in enumerate(arrays):
        canvas = Image.new("RGB", (w, h + (12 if labels else 0)))
        canvas.paste(Image.fromarray(a).convert("RGB"), (0, 0))
        if labels:
            ImageDraw.Draw(canvas).text((2, h), str(labels[i]), fill=(255, 255, 255))
        pictures.append(canvas)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=duration_ms, loop=loop)
    return path


__all__ = ["AtlasFrame", "FilterAtlas", "save_gif"]
