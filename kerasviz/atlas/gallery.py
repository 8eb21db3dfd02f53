"""A static HTML gallery of a model's filters, browsable from the file system: the explorer (like OpenAI Microscope).

```
out/index.html                 every layer in model order: type, output shape, channels, a strip of its units
out/<layer>/index.html         every filter of the layer with its score, sortable by index or by score
out/<layer>/f00012.html        one filter, large, with its settings and strongest incoming channels
out/<layer>/f00012.png         its picture
out/<layer>/thumb.png          a mosaic of the layer's first filters
out/static/explorer.css        the one stylesheet of every page
out/static/explorer.js         the one script: sorting, search (`12` or `layer:12`) and keys
out/static/site.js             the site's layers and units, for the search
```

Static files only: no network asset, no server; the pages work opened from the file system. Every piece of
text goes through `html.escape` (and the site's data through JSON with `<` escaped).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import string
from collections.abc import Sequence

import numpy as np

from kerasviz import atlas as atlas_lib
from kerasviz import images, nets
from kerasviz.atlas.cache import png_bytes, slug

THUMBNAIL_TILES = 16  # filters in a layer's thumb.png mosaic
THUMBNAIL_WIDTH = 192  # px
STRIP_UNITS = 8  # units in a layer's strip on the index page, the strongest first
DEFAULT_TOP_K = 6  # incoming channels listed on a filter page
STATIC = "static"  # the folder of the shared stylesheet and script, in the site and in this package
STATIC_FILES = ("explorer.css", "explorer.js")
RESERVED = {STATIC, "index.html"}  # names a layer folder cannot take

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

def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _page(*, title: str, nav: str, heading: str, body: str, kind: str, layer: str | None = None) -> str:
    """The page template; `nav` and `body` are HTML built from escaped parts, the rest is escaped here.
    `kind` is "index", "layer" or "unit" (the body's class, which the script reads)."""
    root = "" if kind == "index" else "../"
    layer_attr = "" if layer is None else f' data-layer="{_e(layer)}"'
    return _PAGE.substitute(title=_e(title), root=root, kind=kind, layer_attr=layer_attr, nav=nav,
                            heading=_e(heading), body=body)


def _write_static(out_dir: str, layers, slugs: dict) -> None:
    """The shared stylesheet and script, copied from the package, and site.js: the layers and units."""
    folder = os.path.join(out_dir, STATIC)
    os.makedirs(folder, exist_ok=True)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), STATIC)
    for name in STATIC_FILES:
        shutil.copyfile(os.path.join(here, name), os.path.join(folder, name))
    data = {"layers": [{"name": a.layer, "slug": slugs[a.layer], "units": [int(f) for f in a.filters]}
                       for a in layers]}
    text = json.dumps(data, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")
    _write(os.path.join(folder, "site.js"), f"window.KV_SITE = {text};\n")


def _keys_hint(unit_page: bool) -> str:
    keys = ("<kbd>&larr;</kbd> <kbd>&rarr;</kbd> previous, next unit · <kbd>&uarr;</kbd> layer · " if unit_page
            else "")
    return f'<span class="keys muted">{keys}<kbd>/</kbd> search</span>'


def _revived_line(layer, revived) -> str:
    n = len([f for f in layer.filters if int(f) in revived])
    return (f'<p class="revived-summary">{n} of {len(layer.filters)} units revived '
            f'(their pictures outlined; they scored &le; 0 after the main steps).</p>')


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _save_png(image: np.ndarray, path: str) -> None:
    with open(path, "wb") as f:
        f.write(png_bytes(image))


def _slugs(layers: Sequence[str]) -> dict[str, str]:
    out, used = {}, set()
    for name in layers:
        base = slug(name) if slug(name) != "x" else "layer"
        name_slug, i = base, 1
        while name_slug.lower() in used or name_slug.lower() in RESERVED:
            i += 1
            name_slug = f"{base}_{i}"
        used.add(name_slug.lower())
        out[name] = name_slug
    return out


def _thumbnail(layer: atlas_lib.LayerAtlas) -> np.ndarray:
    from PIL import Image

    mosaic = images.stitch(layer.images[:THUMBNAIL_TILES], margin=2)
    arr = mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic
    img = Image.fromarray(arr)
    height = max(1, round(img.height * THUMBNAIL_WIDTH / img.width))
    out = np.asarray(img.resize((THUMBNAIL_WIDTH, height), Image.NEAREST))
    return out[..., None] if out.ndim == 2 else out


def _filter_file(f: int) -> str:
    return f"f{int(f):05d}"


def _incoming(network, layer: str, f: int, top_k: int):
    """`kerasviz.weights.top_inputs` when that module is there and handles the layer, else None."""
    if network is None or top_k <= 0:
        return None
    try:
        from kerasviz import weights
    except ImportError:
        return None
    top_inputs = getattr(weights, "top_inputs", None)
    if top_inputs is None:
        return None
    try:
        return top_inputs(network, layer, int(f), k=top_k)
    except (ValueError, TypeError):  # not a Conv2D, or a layer it cannot trace back
        return None


def _incoming_html(top, slugs: dict, shown: dict, here: str) -> str:
    source = getattr(top, "input_layer", None)
    from_image = bool(getattr(top, "from_image", False))
    rows = []
    for channel, norm in zip(top.channels, top.norms, strict=False):
        channel = int(channel)
        if from_image:
            label = _e(("red", "green", "blue")[channel] if channel < 3 else f"channel {channel}")
            cell = f"input {label}"
        elif source in slugs and channel in shown.get(source, ()):
            prefix = "" if slugs[source] == here else f"../{_e(slugs[source])}/"
            name = _filter_file(channel)
            cell = (f'<a href="{prefix}{name}.html"><img class="tile" src="{prefix}{name}.png" width="48" '
                    f'height="48" style="image-rendering:pixelated" alt="{_e(source)} {channel}"> '
                    f'{_e(source)} #{channel}</a>')
        else:
            cell = f"{_e(source)} #{channel}"
        rows.append(f"<tr><td>{cell}</td><td>{float(norm):.4g}</td></tr>")
    return (f"<h2>Strongest incoming channels</h2><p class=\"muted\">from {_e(source)}, ranked by the L2 "
            f"norm of the kernel slice</p><table><tr><th>channel</th><th>norm</th></tr>{''.join(rows)}"
            "</table>")


def _settings_table(settings: dict) -> str:
    fields = dict(settings.get("settings", {}))
    fields.update({k: settings[k] for k in ("model", "layer", "seed", "objective", "backend") if k in settings})
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in sorted(fields.items())
                   if v is not None)
    return f"<table>{rows}</table>"


def write_gallery(
    atlases,
    out_dir: str | os.PathLike,
    *,
    network: nets.Network | None = None,
    title: str | None = None,
    top_k: int = DEFAULT_TOP_K,
    tile: int = 128,
) -> str:
    """Write a static HTML gallery of layer atlases.

    Args:
        atlases: a `ModelAtlas`, a `LayerAtlas` or a list of `LayerAtlas`.
        out_dir: the folder to write (created; existing gallery files are overwritten).
        network: the `Network` the atlases came from, for the incoming-channel lists. Defaults to the
            `ModelAtlas`'s own.
        title: the page title. Defaults to the model's name.
        top_k: incoming channels listed per filter (when `kerasviz.weights` provides them); 0 for
            none. Defaults to 6.
        tile: display size of each filter on a layer page, in CSS pixels. Defaults to 128.

    Returns:
        The path of `index.html`.

    Raises:
        TypeError: `atlases` is not an atlas or a list of them.
        ValueError: no atlas holds any picture.

    Example:
    >>> site = kv.gallery.write_gallery(kv.atlas.model_atlas(net, preset="fast"), "site")
    """
    if isinstance(atlases, atlas_lib.ModelAtlas):
        network = network if network is not None else atlases.network
        title = title or atlases.model
        layers = list(atlases.layers.values())
    elif isinstance(atlases, atlas_lib.LayerAtlas):
        layers = [atlases]
    elif isinstance(atlases, (list, tuple)) and all(isinstance(a, atlas_lib.LayerAtlas) for a in atlases):
        layers = list(atlases)
    else:
        raise TypeError(f"atlases must be a ModelAtlas, a LayerAtlas or a list of LayerAtlas. "
                        f"Received: {type(atlases).__name__}.")
    layers = [a for a in layers if len(a.filters)]
    if not layers:
        raise ValueError("The atlases hold no picture: nothing to put in a gallery.")
    title = title or (network.name if network is not None else "kerasviz gallery")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    slugs = _slugs([a.layer for a in layers])
    shown = {a.layer: set(a.filters) for a in layers}
    _write_static(out_dir, layers, slugs)
    index_rows = [_write_layer(a, out_dir, slugs, shown, network=network, title=title, top_k=top_k, tile=tile)
                  for a in layers]
    first = layers[0].settings
    body = ("<table><tr><th>layer</th><th>type</th><th>output shape</th><th>channels</th><th>shown</th>"
            f"<th>strongest units</th></tr>{''.join(index_rows)}</table><h2>Settings</h2>"
            + _settings_table({k: v for k, v in first.items() if k != "layer"}))
    index = os.path.join(out_dir, "index.html")
    _write(index, _page(title=title, nav=f'<span>kerasviz explorer</span>{_keys_hint(False)}', heading=title,
                        body=body, kind="index"))
    return index


def _write_layer(a, out_dir: str, slugs: dict, shown: dict, *, network, title: str, top_k: int, tile: int) -> str:
    """A layer's pictures, its unit pages and its page; returns its row of the index page."""
    layer_slug = slugs[a.layer]
    folder = os.path.join(out_dir, layer_slug)
    os.makedirs(folder, exist_ok=True)
    _save_png(_thumbnail(a), os.path.join(folder, "thumb.png"))
    revived = getattr(a, "revived", None)  # LayerAtlas carries no revived list yet: the line shows when it does
    revived = None if revived is None else {int(f) for f in revived}
    order = np.argsort(-a.scores, kind="stable")
    rank = {int(a.filters[i]): r + 1 for r, i in enumerate(order)}
    up = f'<a href="index.html" rel="up">{_e(a.layer)}</a>'
    figures = []
    for i, f in enumerate(a.filters):
        f, score = int(f), float(a.scores[i])
        name = _filter_file(f)
        was_revived = revived is not None and f in revived
        mark = ' class="revived"' if was_revived else ""
        _save_png(a.images[i], os.path.join(folder, name + ".png"))
        figures.append(f'<figure data-index="{i}" data-unit="{f}" data-score="{score!r}"'
                       f'{mark}><a href="{name}.html">'
                       f'<img src="{name}.png" alt="filter {f}" title="filter {f}, score {score:.4g}"></a>'
                       f'<figcaption>#{f} · {score:.3g}{" ↻" if was_revived else ""}</figcaption></figure>')
        nav_parts = ['<a href="../index.html">index</a>', up]
        if i > 0:
            nav_parts.append(f'<a href="{_filter_file(a.filters[i - 1])}.html" rel="prev">previous</a>')
        if i + 1 < len(a.filters):
            nav_parts.append(f'<a href="{_filter_file(a.filters[i + 1])}.html" rel="next">next</a>')
        top = _incoming(network, a.layer, f, top_k)
        body = (f'<img class="big" src="{name}.png" alt="{_e(a.layer)} filter {f}">'
                f'<p>score (mean activation) <b>{score:.4g}</b>, rank {rank[f]} of '
                f'{len(a.filters)} in {_e(a.layer)}{"; revived" if was_revived else ""}</p>'
                + (_incoming_html(top, slugs, shown, layer_slug) if top is not None else "")
                + "<h2>Settings</h2>" + _settings_table(a.settings))
        _write(os.path.join(folder, name + ".html"),
               _page(title=f"{title} · {a.layer} · {f}", nav=" · ".join(nav_parts) + _keys_hint(True),
                     heading=f"{a.layer} filter {f}", body=body, kind="unit", layer=a.layer))
    info = (f'<p class="layer-info">{_e(a.layer_type)}, output shape {_e(a.output_shape)}, {a.channels} '
            f'channels; {len(a.filters)} shown. Click a filter to enlarge it.</p>'
            + (_revived_line(a, revived) if revived is not None else ""))
    toolbar = ('<div class="toolbar"><span class="muted">sort by</span>'
               '<button type="button" data-sort="index" aria-pressed="true">index</button>'
               '<button type="button" data-sort="score" aria-pressed="false">score</button></div>')
    _write(os.path.join(folder, "index.html"),
           _page(title=f"{title} · {a.layer}", nav='<a href="../index.html" rel="up">index</a>' + _keys_hint(False),
                 heading=f"{title} · {a.layer}", kind="layer", layer=a.layer,
                 body=info + toolbar + f'<div class="grid" data-sortable style="--tile:{int(tile)}px">'
                      f'{"".join(figures)}</div>'))
    prefix = _e(layer_slug)
    strip = "".join(
        f'<a href="{prefix}/{_filter_file(a.filters[i])}.html"><img class="thumb" '
        f'src="{prefix}/{_filter_file(a.filters[i])}.png" alt="{_e(a.layer)} filter {int(a.filters[i])}" '
        f'title="filter {int(a.filters[i])}, score {float(a.scores[i]):.4g}"></a>' for i in order[:STRIP_UNITS])
    return (f'<tr><td><a href="{prefix}/index.html">{_e(a.layer)}</a></td><td>{_e(a.layer_type)}</td>'
            f'<td>{_e(a.output_shape)}</td><td>{a.channels}</td><td>{len(a.filters)}</td>'
            f'<td><div class="strip">{strip}</div></td></tr>')


def make_gallery(
    model,
    out_dir: str | os.PathLike,
    layers: Sequence[str] | None = None,
    *,
    top_k: int = DEFAULT_TOP_K,
    **atlas_options,
) -> tuple[str, atlas_lib.ModelAtlas]:
    """Compute (or read from the cache) the atlases of a model's layers and write their gallery.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        out_dir: the folder to write.
        layers: layer names. Defaults to every convolution layer.
        top_k: incoming channels listed per filter. Defaults to 6.
        **atlas_options: passed to `kerasviz.atlas.model_atlas` (`filters`, `preset`, `size`,
            `steps`, `cache_dir`, `weights`, ...).

    Returns:
        `(index_path, model_atlas)`. After an interruption the gallery holds what was done and
        `model_atlas.interrupted` is True.

    Example:
    >>> index, atlases = kv.gallery.make_gallery("VGG16", "site", weights="hed", preset="fast")
    """
    result = atlas_lib.model_atlas(model, layers, **atlas_options)
    if not any(len(a.filters) for a in result.layers.values()):
        raise KeyboardInterrupt("Interrupted before any filter was finished.")
    return write_gallery(result, out_dir, top_k=top_k), result

