"""Images: deprocess, crop, stitch into mosaics, load, save, show.

Float images live in [0, 1] with channels last; uint8 images are what users save and see. No function
here changes its input in place.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

TUTORIAL_STD = 0.15  # keras.io: the deprocessed image has this standard deviation around 0.5


def deprocess(images, *, std: float = TUTORIAL_STD, crop: int = 0) -> np.ndarray:
    """Normalize float images for display, as the keras.io tutorial does: center each image, scale it to
    standard deviation `std` around 0.5, crop `crop` pixels from every border, clip, convert to uint8.

    Args:
        images: one image `(H, W, C)` or a batch `(N, H, W, C)`, any float range.
        std: the standard deviation of the result in [0, 1] units. Defaults to 0.15.
        crop: pixels removed at each border. Defaults to 0.

    Returns:
        uint8 array of the same rank.

    Example:
    >>> kv.deprocess(np.random.rand(180, 180, 3), crop=25).shape
    (130, 130, 3)
    """
    x = np.asarray(images, dtype="float64")
    axes = tuple(range(x.ndim - 3, x.ndim))
    x = x - x.mean(axis=axes, keepdims=True)
    x = x / (x.std(axis=axes, keepdims=True) + 1e-5) * std
    x = center_crop(x, border=crop) + 0.5
    return to_uint8(x)


def to_uint8(images) -> np.ndarray:
    """Clip [0, 1] float images and convert them to uint8 (rounded).

    Args:
        images: float array (any shape) with values meant to be in [0, 1].

    Returns:
        uint8 array of the same shape, in 0-255.

    Example:
    >>> kv.to_uint8(np.array([-0.1, 0.5, 1.2]))
    array([  0, 128, 255], dtype=uint8)
    """
    x = np.clip(np.asarray(images, dtype="float64"), 0.0, 1.0)
    return np.round(x * 255.0).astype("uint8")


def center_crop(images, size: int | tuple[int, int] | None = None, *, border: int = 0) -> np.ndarray:
    """Crop images around their center, to `size` or by `border` pixels on every side.

    Args:
        images: `(H, W, C)` or `(N, H, W, C)`.
        size: the output `(height, width)` or one int for both. Defaults to None (crop by `border`).
        border: pixels removed at each border (used when `size` is None). Defaults to 0.

    Returns:
        The cropped array (a view).

    Raises:
        ValueError: `size` is larger than the images, or `border` is negative or leaves nothing.

    Example:
    >>> kv.center_crop(np.zeros((2, 32, 32, 3)), border=4).shape
    (2, 24, 24, 3)
    """
    x = np.asarray(images)
    h, w = x.shape[-3], x.shape[-2]
    if size is None:
        if border < 0 or 2 * border >= min(h, w):
            raise ValueError(f"Cannot crop {border} px from each side of a {h}x{w} image.")
        th, tw = h - 2 * border, w - 2 * border
    else:
        th, tw = (size, size) if isinstance(size, int) else size
        if th > h or tw > w:
            raise ValueError(f"Cannot crop a {h}x{w} image to {th}x{tw}.")
    top, left = (h - th) // 2, (w - tw) // 2
    return x[..., top : top + th, left : left + tw, :]


def grid_shape(count: int, cols: int | None = None) -> tuple[int, int]:
    """Rows and columns of a mosaic of `count` tiles: square-ish (64 -> 8x8) unless `cols` is given.

    Args:
        count: the number of tiles, >= 1.
        cols: the number of columns. Defaults to None (ceil of the square root of `count`).

    Returns:
        `(rows, cols)`.

    Raises:
        ValueError: `count` is not positive.

    Example:
    >>> kv.images.grid_shape(10)
    (3, 4)
    """
    if count <= 0:
        raise ValueError("Cannot stitch an empty list of images.")
    cols = cols or math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def stitch(
    images,
    *,
    cols: int | None = None,
    margin: int = 5,
    labels: Sequence | None = None,
    background: int = 0,
) -> np.ndarray:
    """Stitch tiles into one mosaic image, row by row (the keras.io 8x8 atlas for 64 images).

    Args:
        images: uint8 or [0, 1] float tiles, `(N, H, W, C)` or a list of equal-sized `(H, W, C)` arrays.
        cols: tiles per row. Defaults to `ceil(sqrt(N))`; the last row may be partial.
        margin: pixels between tiles. Defaults to 5.
        labels: optional text per tile (e.g. filter indices), drawn in the tile's top-left corner.
        background: gray level (0-255) of margins and empty tiles. Defaults to 0 (black).

    Returns:
        A uint8 `(rows * H + (rows - 1) * margin, cols * W + (cols - 1) * margin, C)` array.

    Example:
    >>> tiles = np.random.default_rng(0).uniform(size=(6, 16, 16, 3))
    >>> kv.stitch(tiles, margin=2, labels=range(6)).shape
    (34, 52, 3)
    """
    tiles = [np.asarray(t) for t in images]
    if not tiles:
        raise ValueError("Cannot stitch an empty list of images.")
    tiles = [t if t.dtype == np.uint8 else to_uint8(t) for t in tiles]
    tiles = [t[..., None] if t.ndim == 2 else t for t in tiles]
    h, w, c = tiles[0].shape
    if any(t.shape != (h, w, c) for t in tiles):
        raise ValueError(f"All tiles must have the same shape; got {sorted({t.shape for t in tiles})}.")
    if labels is not None and len(labels) != len(tiles):
        raise ValueError(f"Got {len(labels)} labels for {len(tiles)} images.")
    rows, cols = grid_shape(len(tiles), cols)
    out = np.full((rows * h + (rows - 1) * margin, cols * w + (cols - 1) * margin, c), background, "uint8")
    for i, tile in enumerate(tiles):
        r, k = divmod(i, cols)
        if labels is not None:
            tile = _label(tile, str(labels[i]))
        out[r * (h + margin) : r * (h + margin) + h, k * (w + margin) : k * (w + margin) + w] = tile
    return out


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.fromarray(tile.squeeze(-1) if tile.shape[-1] == 1 else tile)
    draw = ImageDraw.Draw(img)
    box = draw.textbbox((2, 1), text)
    draw.rectangle((0, 0, box[2] + 2, box[3] + 1), fill=0)
    draw.text((2, 1), text, fill=255 if img.mode == "L" else (255, 255, 255))
    arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr


def as_picture(image) -> np.ndarray:
    """The one picture an argument stands for: an array, or a result that holds one picture.

    A result with an `image` (`kv.caricature`'s) gives it; a result with `images` (`kv.visualize_filters`,
    `kv.dream`) gives its only picture, and one of several must be stitched first.

    Args:
        image: an array, or an object with an `image` array or an `images` batch of one.

    Returns:
        The array (not copied).

    Raises:
        ValueError: a result of several pictures.

    Example:
    >>> kv.images.as_picture(np.zeros((8, 8, 3))).shape
    (8, 8, 3)
    """
    if isinstance(image, np.ndarray):
        return image
    if hasattr(image, "image"):
        return np.asarray(image.image)
    if hasattr(image, "images"):
        batch = np.asarray(image.images)
        if len(batch) != 1:
            raise ValueError(f"This {type(image).__name__} holds {len(batch)} pictures: stitch them into one "
                             f"first (kv.stitch(result.images)) or pick one (result.images[0]).")
        return batch[0]
    return np.asarray(image)


def save_image(image, path: str | os.PathLike) -> str:
    """Save one image (uint8, or float in [0, 1]) to `path`; the format follows the extension.

    Creates missing parent folders.

    Args:
        image: one `(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)` image (a batch of one is accepted),
            or a result that holds one picture (`kv.caricature(...)`, `kv.dream(...)`, see `as_picture`).
        path: the file to write, e.g. ending in `.png` or `.jpg`.

    Returns:
        The path written.

    Raises:
        ValueError: the image has another shape, or the path cannot be written (the message says why).

    Example:
    >>> kv.save_image(np.zeros((32, 32, 3)), "out/black.png")
    'out/black.png'
    """
    from PIL import Image

    image = as_picture(image)
    arr = np.asarray(image)
    arr = arr if arr.dtype == np.uint8 else to_uint8(arr)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(
            f"save_image expects one (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image. Received shape "
            f"{np.asarray(image).shape}; use kv.stitch for a batch."
        )
    path = os.fspath(path)
    try:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        Image.fromarray(arr).save(path)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"Cannot write image to {path!r}: {e}. Choose a writable path ending in "
                         ".png or .jpg.") from e
    return path


def load_image(image, size: int | tuple[int, int] | None = None, *, channels: int = 3) -> np.ndarray:
    """Load an image as float32 `(H, W, channels)` in [0, 1].

    Args:
        image: a file path, a PIL image, or an array (`(H, W)`, `(H, W, C)`; uint8 in 0-255 or float
            in [0, 1]).
        size: resize to `(height, width)` (one int: both). Defaults to the original size.
        channels: 3 for RGB (grayscale is repeated to RGB and alpha dropped), 1 for grayscale. Arrays with
            other channel counts must already have `channels` channels. Defaults to 3.

    Returns:
        float32 array in [0, 1].

    Raises:
        ValueError: the file does not exist or is not an image, or the array's shape does not fit.

    Example:
    >>> kv.load_image(np.full((48, 64), 255, "uint8"), size=32).shape
    (32, 32, 3)
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise ValueError(f"No image file at {path!r}.")
        try:
            with Image.open(path) as img:
                img.load()
                image = img.copy()
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{path!r} is not an image file PIL can read (PNG, JPEG, ...).") from e
    if isinstance(image, Image.Image):
        image = image.convert("RGB" if channels == 3 else "L")
        arr = np.asarray(image, dtype="float32") / 255.0
    else:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype("float32") / 255.0
        elif np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype("float32")
            if arr.size and (arr.min() < 0 or arr.max() > 1):
                raise ValueError(
                    "A float image array must have values in [0, 1] (or be uint8 in 0-255). "
                    f"Received values in [{arr.min():.3g}, {arr.max():.3g}]."
                )
        else:
            raise ValueError(f"Cannot read an image from an array of dtype {arr.dtype}.")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"An image must be (H, W) or (H, W, C). Received shape {arr.shape}.")
    if arr.shape[-1] != channels:
        if channels == 3 and arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
        elif channels == 3 and arr.shape[-1] == 4:
            arr = arr[..., :3]
        elif channels == 1 and arr.shape[-1] in (3, 4):
            arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114], "float32")
            arr = arr[..., None]
        else:
            raise ValueError(
                f"Expected an image with {channels} channels; received {arr.shape[-1]} (shape {arr.shape})."
            )
    if size is not None:
        arr = resize(arr, size)
    return np.ascontiguousarray(arr, dtype="float32")


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a float `(H, W, C)` image with bicubic interpolation (per channel, any channel count).

    Args:
        image: float `(H, W, C)` in [0, 1].
        size: the output `(height, width)`, or one int for both.

    Returns:
        float32 `(height, width, C)`, clipped to [0, 1].

    Example:
    >>> kv.images.resize(np.zeros((64, 48, 5), "float32"), (32, 24)).shape
    (32, 24, 5)
    """
    from PIL import Image

    th, tw = (size, size) if isinstance(size, int) else size
    chans = [
        np.asarray(Image.fromarray(image[..., c].astype("float32"), mode="F").resize((tw, th), Image.BICUBIC))
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype("float32")


def show(image, *, title: str | None = None) -> str | None:
    """Display an image inline in Jupyter, in a matplotlib window elsewhere, or, where there is no display
    (a script under a non-interactive matplotlib backend such as Agg), save it and say where.

    Args:
        image: uint8, or float in [0, 1], `(H, W, C)`, or a result that holds one picture (see `as_picture`).
        title: optional title (matplotlib only). Defaults to None.

    Returns:
        None when the image was shown; the path of the PNG written when there was no display.

    Example:
    >>> result = kv.visualize_filters("VGG16", "block3_conv3", range(4), weights="hed", preset="fast",
    ...                               size=32, steps=5, progress=False)
    >>> path = kv.show(kv.stitch(result.images))  # doctest: +ELLIPSIS
    kv.show: no display (matplotlib backend 'agg'); saved the image to ...png
    """
    from PIL import Image

    arr = np.asarray(as_picture(image))
    arr = arr if arr.dtype == np.uint8 else to_uint8(arr)
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            import io

            from IPython.display import Image as PNG

            buffer = io.BytesIO()  # PNG bytes alone: a PIL image would also embed a JPEG copy
            Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(buffer, format="PNG")
            display(PNG(data=buffer.getvalue(), format="png"))
            return None
    except ImportError:
        pass
    import matplotlib
    from matplotlib.backends import BackendFilter, backend_registry

    backend_name = matplotlib.get_backend().lower()
    if backend_name in backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE):
        import tempfile

        fd, path = tempfile.mkstemp(prefix="kerasviz-show-", suffix=".png")
        os.close(fd)
        save_image(arr, path)
        print(f"kv.show: no display (matplotlib backend {backend_name!r}); saved the image to {path}")
        return path
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.imshow(arr.squeeze(-1) if arr.shape[-1] == 1 else arr, cmap="gray")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    plt.show()
    return None


def channels_to_rgb(images, channels: Sequence[int] = (0, 1, 2)) -> np.ndarray:
    """Show images with any number of channels (multispectral, 4 bands, ...) as RGB: pick three
    channels (e.g. `(3, 2, 1)` for Sentinel-2 true color) or one channel as gray.

    Args:
        images: `(H, W, C)` or `(N, H, W, C)`, uint8 or float in [0, 1].
        channels: the channel indices shown as red, green, blue (one index: gray). Defaults to `(0, 1, 2)`.

    Returns:
        An array of the same kind with 3 channels.

    Raises:
        ValueError: `channels` has neither 1 nor 3 entries, or an index is out of range.

    Example:
    >>> kv.images.channels_to_rgb(np.zeros((4, 16, 16, 13)), channels=(3, 2, 1)).shape
    (4, 16, 16, 3)
    """
    x = np.asarray(images)
    channels = list(channels)
    if len(channels) not in (1, 3):
        raise ValueError(f"channels must name 1 or 3 channels. Received: {channels}.")
    if any(not 0 <= c < x.shape[-1] for c in channels):
        raise ValueError(f"channels {channels} out of range for images with {x.shape[-1]} channels.")
    picked = x[..., channels]
    return np.repeat(picked, 3, axis=-1) if len(channels) == 1 else picked


def channel_grid(image, *, cols: int | None = None, margin: int = 2) -> np.ndarray:
    """Show every channel of one `(H, W, C)` image as a gray tile in a mosaic (C tiles).

    Args:
        image: one `(H, W, C)` image or activation map, any channel count.
        cols: tiles per row. Defaults to None (square-ish, see `grid_shape`).
        margin: pixels between tiles. Defaults to 2.

    Returns:
        The mosaic, as `stitch` makes it (one channel).

    Raises:
        ValueError: `image` is not 3-D.

    Example:
    >>> kv.images.channel_grid(np.zeros((8, 8, 4)), margin=0).shape
    (16, 16, 1)
    """
    x = np.asarray(image)
    if x.ndim != 3:
        raise ValueError(f"channel_grid expects one (H, W, C) image. Received shape {x.shape}.")
    tiles = np.moveaxis(x, -1, 0)[..., None]
    return stitch(tiles, cols=cols, margin=margin)
