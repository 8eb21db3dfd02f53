"""The explorer's HTML: the page template and the pieces of its pages, every text escaped (`html.escape`).

A piece takes data and returns HTML built from escaped parts; file names and folders come from `gallery.py`.
"""

from __future__ import annotations

import base64
import html
import string

import numpy as np

from kerasviz import images
from kerasviz.atlas.cache import png_bytes

KERNEL_TAP = 8  # px per kernel tap in a kernel-slice heatmap
KERNEL_MIN = 24  # px: the smallest kernel heatmap side (a 1x1 kernel is one 24 px square)
LINK_TILE = 56  # px: a linked unit's thumbnail on a unit page
VIEW_TILE = 128  # px: a negative or diverse picture on a unit page (the row fits 1100 px beside the picture)
EXAMPLE_TILE = 112  # px: a dataset example on a unit page

_PAGE = string.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<link rel="icon" href="data:,"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="${root}static/explorer.css"></head>
<body class="$kind" data-root="$root"$layer_attr>
<nav>$nav<form class="search" role="search" action="#"><input id="search" type="search" autocomplete="off"
 placeholder="unit or layer:unit" aria-label="Go to a unit: its number, or layer:unit" title="/ to search">
<span id="search-message" class="muted" role="status"></span></form></nav>
<h1>$heading</h1>
$body
<script src="${root}static/site.js"></script><script src="${root}static/explorer.js"></script>
</body></html>
""")


def e(value) -> str:
    """`value` as escaped HTML text (quotes too)."""
    return html.escape(str(value), quote=True)


def page(*, title: str, nav: str, heading: str, body: str, kind: str, layer: str | None = None) -> str:
    """The page template; `nav` and `body` are HTML built from escaped parts, the rest is escaped here.
    `kind` is "index", "layer" or "unit" (the body's class, which the script reads)."""
    root = "" if kind == "index" else "../"
    layer_attr = "" if layer is None else f' data-layer="{e(layer)}"'
    return _PAGE.substitute(title=e(title), root=root, kind=kind, layer_attr=layer_attr, nav=nav,
                            heading=e(heading), body=body)


def keys_hint(unit_page: bool) -> str:
    keys = ("<kbd>&larr;</kbd> <kbd>&rarr;</kbd> previous, next unit · <kbd>&uarr;</kbd> layer · " if unit_page
            else "")
    return f'<span class="keys muted">{keys}<kbd>/</kbd> search</span>'


def revived_line(n: int, total: int) -> str:
    if not n:
        return f'<p class="revived-summary muted">No unit of the {total} needed reviving.</p>'
    return (f'<p class="revived-summary">{n} of {total} units revived (marked ↻, their pictures outlined: they '
            f'scored &le; 0 after the main steps and got the revive steps on their centre neuron).</p>')


def settings_table(settings: dict) -> str:
    fields = dict(settings.get("settings", {}))
    fields.update({k: settings[k] for k in ("model", "layer", "seed", "objective", "backend") if k in settings})
    rows = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in sorted(fields.items())
                   if v is not None)
    return f"<table>{rows}</table>"


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


def link_cards(title: str, what: str, links, href, tile_of) -> str:
    """A section of linked units: each a thumbnail of the unit's own picture (linked to its page), the kernel
    slice between the two units as a heatmap, its norm and what the link means.

    `href(layer, unit)` gives the unit page's address (None when the gallery has none), `tile_of` its picture's."""
    if not links:
        return ""
    scale = max([float(np.abs(link.kernel).max()) for link in links if link.kernel is not None] or [1.0])
    cards = []
    for link in links:
        target = href(link.layer, link.unit)
        label = f"{e(link.layer)} #{int(link.unit)}"
        if target is not None:
            thumb = (f'<a href="{target}"><img class="tile" src="{tile_of(link.layer, link.unit)}" width="{LINK_TILE}"'
                     f' height="{LINK_TILE}" alt="{label}" title="{label}"></a>')
            label = f'<a href="{target}">{label}</a>'
        else:
            thumb = f'<span class="tile none" title="no page in this gallery">{int(link.unit)}</span>'
        kernel = ""
        if link.kernel is not None:
            kernel = (f'<img class="kernel" src="{data_uri(kernel_png(link.kernel, scale))}" '
                      f'alt="kernel slice" title="kernel slice (red positive, blue negative)">')
        norm = "" if link.norm is None else f' <span class="muted">norm {link.norm:.3g}</span>'
        note = f'<div class="note muted">{e(link.note)}</div>' if link.note else ""
        cards.append(f'<div class="card">{thumb}{kernel}<div>{label}{norm}{note}</div></div>')
    sub = f'<p class="muted">{e(what)}</p>' if what else ""
    return f'<h2>{e(title)}</h2>{sub}<div class="cards">{"".join(cards)}</div>'


def picture_row(figures) -> str:
    """`figures`: `(src, label, class)` for the unit's pictures (positive, negative, diverse), each labelled."""
    out = []
    for src, label, kind in figures:
        size = 'class="big"' if kind == "positive" else f'width="{VIEW_TILE}" height="{VIEW_TILE}"'
        out.append(f'<figure class="{e(kind)}"><img {size} src="{e(src)}" alt="{e(label)}">'
                   f'<figcaption>{e(label)}</figcaption></figure>')
    return f'<div class="views{" alone" if len(figures) == 1 else ""}">{"".join(out)}</div>'


def examples_section(items) -> str:
    """`items`: `(src, activation, source)` of the top dataset examples, strongest first."""
    if not items:
        return ""
    figs = "".join(f'<figure><img src="{e(src)}" width="{EXAMPLE_TILE}" height="{EXAMPLE_TILE}" '
                   f'alt="example {i + 1}" title="{e(source)}"><figcaption>{activation:.3g}<br>'
                   f'<span class="muted">{e(_short(source))}</span></figcaption></figure>'
                   for i, (src, activation, source) in enumerate(items))
    return ('<h2>Dataset examples</h2><p class="muted">the images that drive this unit highest, cropped to its '
            f'receptive field, with the activation</p><div class="views examples">{figs}</div>')


def _short(source: str, width: int = 18) -> str:
    source = str(source).replace("\\", "/").rsplit("/", 1)[-1]
    return source if len(source) <= width else "…" + source[-(width - 1):]


def heatmap_section(src: str, name: str) -> str:
    return (f'<h2>Over your image</h2><p class="muted">where in {e(name)} this unit fires: its activation map '
            f'upsampled over the image</p><img class="overlay" src="{e(src)}" alt="activation over {e(name)}">')


def thumbnail(tiles: np.ndarray, width: int, count: int) -> np.ndarray:
    """The first `count` pictures in one mosaic, resized to `width` px."""
    from PIL import Image

    mosaic = images.stitch(tiles[:count], margin=2)
    arr = mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic
    img = Image.fromarray(arr)
    height = max(1, round(img.height * width / img.width))
    out = np.asarray(img.resize((width, height), Image.NEAREST))
    return out[..., None] if out.ndim == 2 else out
