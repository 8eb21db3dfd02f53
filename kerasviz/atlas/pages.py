"""The explorer's HTML: Jinja2 templates with autoescape (`atlas/templates/`), and the pictures a page draws.

Every value a page shows (layer names, file names, settings, titles) reaches the HTML through a template
variable, so the template engine escapes it; nothing is escaped by hand and nothing from a model, a file or a
user is marked safe. `gallery.py` decides what each page holds and where its files go; this module turns that
into HTML (`render`), draws the kernel heatmaps and thumbnails, and lays out the data of the link cards.
"""

from __future__ import annotations

import base64
import dataclasses
import functools

import jinja2
import numpy as np

from kerasviz import images
from kerasviz.atlas.cache import png_bytes

KERNEL_TAP = 8  # px per kernel tap in a kernel-slice heatmap
KERNEL_MIN = 24  # px: the smallest kernel heatmap side (a 1x1 kernel is one 24 px square)
LINK_TILE = 56  # px: a linked unit's thumbnail on a unit page
VIEW_TILE = 128  # px: a negative or diverse picture on a unit page (the row fits 1100 px beside the picture)
EXAMPLE_TILE = 112  # px: a dataset example on a unit page


@functools.cache
def environment() -> jinja2.Environment:
    """The explorer's template environment: the package's `templates/` folder, autoescape on for every
    template, an error (not an empty string) for a variable a page was not given, and the tile sizes."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("kerasviz.atlas", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.globals.update(link_tile=LINK_TILE, view_tile=VIEW_TILE, example_tile=EXAMPLE_TILE)
    return env


def render(template: str, **context) -> str:
    """One page: `template` (`"index.html"`, `"layer.html"`, `"pending.html"` or `"unit.html"`) filled with
    `context`, every value escaped.

    Args:
        template: the template's file name in `kerasviz/atlas/templates/`.
        **context: the values the template reads (`title`, `heading`, `layer`, and the page's own).

    Returns:
        The page's HTML.

    Example:
    >>> from kerasviz.atlas import pages
    >>> html = pages.render("pending.html", title="<m>", heading="<m> · conv", layer="conv",
    ...                     info=kv.gallery.PendingLayer("conv", "Conv2D", (None, 8, 8, 4), 4))
    >>> "&lt;m&gt;" in html and "<m>" not in html
    True
    """
    return environment().get_template(template).render(**context)


def write_text(path: str, text: str) -> None:
    """Write a page (UTF-8)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def save_png(image: np.ndarray, path: str) -> None:
    """Write a uint8 `(H, W, C)` picture as a PNG file."""
    with open(path, "wb") as f:
        f.write(png_bytes(np.asarray(image)))


def settings_rows(settings: dict) -> list[tuple[str, object]]:
    """The rows of a settings table: the run's settings and the model, layer, seed, objective and backend, by
    name, without the unset ones."""
    fields = dict(settings.get("settings", {}))
    fields.update({k: settings[k] for k in ("model", "layer", "seed", "objective", "backend") if k in settings})
    return [(k, v) for k, v in sorted(fields.items()) if v is not None]


CHECKER = 8  # px: a square of the checkerboard a transparent picture is drawn over
CHECKER_LEVELS = (0.4, 0.6)  # the checkerboard's two grays


def over_checkerboard(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A picture drawn over a gray checkerboard through its transparency map: where `alpha` is 0 the
    checkerboard shows, where it is 1 the picture.

    Args:
        image: uint8 `(H, W, C)`.
        alpha: float `(H, W)` in [0, 1] (resized to the picture where it differs).

    Returns:
        uint8 `(H, W, 3)`.

    Example:
    >>> from kerasviz.atlas import pages
    >>> out = pages.over_checkerboard(np.full((16, 16, 3), 255, "uint8"), np.zeros((16, 16)))
    >>> out.shape, int(out[0, 0, 0]), int(out[0, 8, 0])
    ((16, 16, 3), 102, 153)
    """
    rgb = np.asarray(image, "float32") / 255.0
    rgb = np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb[..., :3]
    a = np.clip(np.asarray(alpha, "float32"), 0.0, 1.0)
    if a.shape != rgb.shape[:2]:
        a = np.clip(images.resize(a[..., None], rgb.shape[:2])[..., 0], 0.0, 1.0)
    rows, cols = np.indices(rgb.shape[:2]) // CHECKER
    board = np.where((rows + cols) % 2 == 0, *CHECKER_LEVELS)[..., None]
    return images.to_uint8(a[..., None] * rgb + (1.0 - a[..., None]) * board)


def kernel_png(kernel: np.ndarray, scale: float) -> bytes:
    """A `(kh, kw)` kernel slice as a small heatmap: red positive, blue negative, white zero, `scale` the
    magnitude that saturates."""
    k = np.asarray(kernel, "float64") / (scale if scale > 0 else 1.0)
    k = np.clip(k, -1.0, 1.0)[..., None]
    red, blue = np.array([214, 39, 40]), np.array([31, 119, 180])
    white = np.array([255, 255, 255])
    rgb = np.where(k >= 0, white + k * (red - white), white - k * (blue - white))
    tap = max(KERNEL_TAP, -(-KERNEL_MIN // max(k.shape[:2])))
    rgb = np.repeat(np.repeat(rgb, tap, axis=0), tap, axis=1)
    return png_bytes(np.round(rgb).astype("uint8"))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclasses.dataclass
class Card:
    """One linked unit on a unit page, as its card shows it.

    Attributes:
        layer: the linked unit's layer.
        unit: its channel.
        href: its page's address; None when the gallery has none.
        tile: its picture's address (None without a page).
        kernel: the kernel slice between the two units as a PNG data URI; None without weights.
        norm: the slice's L2 norm; None without weights.
        note: what the link means; "" for a plain kernel link.
    """

    layer: str
    unit: int
    href: str | None
    tile: str | None
    kernel: str | None
    norm: float | None
    note: str


def link_cards(links, href) -> list[Card]:
    """The cards of a section of linked units, their kernel heatmaps on one colour scale.

    Args:
        links: `links.Link`s.
        href: `href(layer, unit)`, the unit page's address, or None when the gallery has none; the picture
            is the page's `.png` beside it.
    """
    scale = max([float(np.abs(link.kernel).max()) for link in links if link.kernel is not None] or [1.0])
    cards = []
    for link in links:
        target = href(link.layer, link.unit)
        kernel = None if link.kernel is None else data_uri(kernel_png(link.kernel, scale))
        cards.append(Card(link.layer, int(link.unit), target,
                          None if target is None else target[: -len(".html")] + ".png", kernel, link.norm, link.note))
    return cards


def short_name(source: str) -> str:
    """An example's file name without its folders (`"#3"` for the fourth image of an array)."""
    return str(source).replace("\\", "/").rsplit("/", 1)[-1]


def thumbnail(tiles: np.ndarray, width: int, count: int) -> np.ndarray:
    """The first `count` pictures in one mosaic, resized to `width` px."""
    from PIL import Image

    mosaic = images.stitch(tiles[:count], margin=2)
    arr = mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic
    img = Image.fromarray(arr)
    height = max(1, round(img.height * width / img.width))
    out = np.asarray(img.resize((width, height), Image.NEAREST))
    return out[..., None] if out.ndim == 2 else out
