"""What a model is to kerasviz: the Keras model, its preprocessing from [0, 1] images, and its image input."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np

from kerasviz.nets import inputs

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)


IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Maps images in [0, 1] (RGB for 3 channels) to a model's input space: `x[..., order] * scale + offset`.

    Every `keras.applications` family is such a per-channel affine map, which makes it invertible
    (`invert`), so that images can move between the two spaces exactly.

    Args:
        name: a short description (`"caffe"`, `"tf"`, `"torch"`, `"none"`, `"range(0, 1)"`).
        scale: one factor per input channel (after reordering).
        offset: one offset per input channel (after reordering).
        bgr: reverse the channel order (caffe models read BGR).
        source: what it was read from in the model's own layers (a note for the user), or None.
    """

    name: str
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    bgr: bool = False
    source: str | None = dataclasses.field(default=None, compare=False)

    def __call__(self, images):
        """Apply the map to a batch of images (any backend tensor or NumPy array, channels last)."""
        x = images
        if self.bgr:
            x = images[..., ::-1] if isinstance(images, np.ndarray) else keras.ops.flip(images, axis=-1)
        scale = np.asarray(self.scale, "float32")
        offset = np.asarray(self.offset, "float32")
        if not isinstance(x, np.ndarray):
            scale, offset = keras.ops.convert_to_tensor(scale), keras.ops.convert_to_tensor(offset)
        return x * scale + offset

    def invert(self, inputs):
        """Map model inputs back to [0, 1] images (NumPy)."""
        x = (np.asarray(inputs, "float32") - np.asarray(self.offset, "float32")) / np.asarray(
            self.scale, "float32"
        )
        return x[..., ::-1] if self.bgr else x

    @classmethod
    def family(cls, family: str, channels: int = 3) -> Preprocessing:
        """The preprocessing of a `keras.applications` family: `"caffe"`, `"tf"`, `"torch"` or `"none"`."""
        if family == "caffe":
            return cls("caffe", (255.0,) * 3, tuple(-m for m in CAFFE_MEAN_BGR), bgr=True)
        if family == "tf":
            return cls("tf", (2.0,) * 3, (-1.0,) * 3)
        if family == "torch":
            return cls(
                "torch",
                tuple(1.0 / s for s in IMAGENET_STD_RGB),
                tuple(-m / s for m, s in zip(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, strict=True)),
            )
        if family == "none":
            return cls("none", (255.0,) * 3, (0.0,) * 3)
        raise ValueError(
            f"Unknown preprocessing family {family!r}. Expected one of 'caffe', 'tf', 'torch', 'none'."
        )

    @classmethod
    def from_range(cls, low: float, high: float, channels: int = 3) -> Preprocessing:
        """A linear map of [0, 1] onto the model's input range `[low, high]`."""
        if not high > low:
            raise ValueError(f"input_range must be (low, high) with high > low. Received: ({low}, {high}).")
        return cls(f"range({low:g}, {high:g})", (float(high - low),) * channels, (float(low),) * channels)


@dataclasses.dataclass
class Network:
    """A Keras model together with what kerasviz needs to know about it.

    Attributes:
        model: the `keras.Model`.
        name: a display name (`"VGG16"`).
        preprocess: maps [0, 1] images to the model's input space; a `Preprocessing` or any callable.
        weights: where the weights came from (`"imagenet"`, `"hed"`, a path, `None`).
    """

    model: keras.Model
    name: str
    preprocess: Preprocessing | Callable
    weights: str | None = None
    image_input: int = 0
    other_inputs: dict = dataclasses.field(default_factory=dict)

    @property
    def input_channels(self) -> int:
        shape = self.model.inputs[self.image_input].shape
        return int(shape[-1]) if shape[-1] is not None else 3

    def model_inputs(self, images, extractor: keras.Model | None = None):
        """The inputs for a batch of images: the image alone, or for a multi-input model the list of inputs with
        the others held at their given values, or zeros (repeated over the batch).

        Args:
            images: the batch of images (already preprocessed).
            extractor: the feature extractor the inputs are for (`feature_extractor`), which takes only the
                inputs its layers depend on. Defaults to None: the model's inputs, all of them.

        Returns:
            A tensor, or a list in the order the extractor (or model) takes its inputs.

        Raises:
            ValueError: an input the layers depend on has no value and no fixed shape (see `inputs.value_of`).
        """
        if extractor is not None:
            order = inputs.extractor_inputs(self.model, extractor, self.image_input)
        else:
            order = list(range(len(self.model.inputs)))
        if order == [self.image_input]:
            return images
        batch = images.shape[0]
        out = []
        for i in order:
            if i == self.image_input:
                out.append(images)
                continue
            value = inputs.value_of(self.model, i, self.other_inputs)
            broadcast = np.broadcast_to if isinstance(images, np.ndarray) else keras.ops.broadcast_to
            out.append(broadcast(value[None], (batch,) + value.shape))
        return out

    def __repr__(self):
        return f"Network({self.name!r}, weights={self.weights!r}, preprocess={_describe(self.preprocess)})"


def _describe(preprocess) -> str:
    return preprocess.name if isinstance(preprocess, Preprocessing) else getattr(preprocess, "__name__", "fn")
