"""A static HTML gallery of a model's filters, browsable from the file system (like OpenAI Microscope).

```
out/index.html                 every layer: type, output shape, channels, a thumbnail
out/<layer>/index.html         every filter of the layer with its score; click one to enlarge it
out/<layer>/f00012.html        one filter, large, with its settings and strongest incoming channels
out/<layer>/f00012.png         its picture
```

Pages are self-contained (inline CSS, no script, no network asset) and every piece of text goes
through `html.escape`.
"""

from __future__ import annotations

import html
import os
import string
from collections.abc import Sequence

import numpy as np

from kerasviz import atlas as atlas_lib
from kerasviz import images, nets
from kerasviz.atlas.cache import png_bytes, slug

THUMBNAIL_TILES = 16  # filters shown in a layer's thumbnail on the index page
THUMBNAIL_WIDTH = 192  # px
DEFAULT_TOP_K = 6  # incoming channels listed on a filter page

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#111;color:#ddd}
a{color:#8cf;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse}td,th{padding:.35em .8em;border-bottom:1px solid #333;text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.grid figure{margin:0;text-align:center;font-size:12px}
.grid img{width:var(--tile);height:var(--tile);image-rendering:pixelated;display:block}
.big{width:min(90vw,512px);image-rendering:pixelated}
.thumb{width:192px;image-rendering:pixelated}
.muted{color:#888}nav{margin-bottom:1em}
"""

_PAGE = string.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<link rel="icon" href="data:,"><meta name="viewport" content="width=device-width, initial-scale=1">
<style>$style</style></head>
<body>
<nav>$nav</nav>
<h1>$heading</h1>
$body
</body></html>
""")


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _page(*, title: str, nav: str, heading: str, body: str) -> str:
    """The page template; `nav` and `body` are HTML built from escaped parts, the rest is escaped here."""
    return _PAGE.substitute(title=_e(title), style=STYLE, nav=nav, heading=_e(heading), body=body)


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
        while name_slug.lower() in used or name_slug.lower() == "index.html":
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
    style_tile = f'<style>:root{{--tile:{int(tile)}px}}</style>'

    index_rows = []
    for a in layers:
        slug = slugs[a.layer]
        folder = os.path.join(out_dir, slug)
        os.makedirs(folder, exist_ok=True)
        _save_png(_thumbnail(a), os.path.join(folder, "thumb.png"))
        order = np.argsort(-a.scores, kind="stable")
        rank = {int(a.filters[i]): r + 1 for r, i in enumerate(order)}
        figures = []
        for i, f in enumerate(a.filters):
            name = _filter_file(f)
            _save_png(a.images[i], os.path.join(folder, name + ".png"))
            figures.append(f'<figure><a href="{name}.html"><img src="{name}.png" alt="filter {int(f)}" '
                           f'title="filter {int(f)}, score {a.scores[i]:.4g}"></a>'
                           f'<figcaption>#{int(f)} · {a.scores[i]:.3g}</figcaption></figure>')
            nav_parts = ['<a href="../index.html">index</a>', f'<a href="index.html">{_e(a.layer)}</a>']
            if i > 0:
                nav_parts.append(f'<a href="{_filter_file(a.filters[i - 1])}.html" rel="prev">previous</a>')
            if i + 1 < len(a.filters):
                nav_parts.append(f'<a href="{_filter_file(a.filters[i + 1])}.html" rel="next">next</a>')
            top = _incoming(network, a.layer, f, top_k)
            body = (f'<img class="big" src="{name}.png" alt="{_e(a.layer)} filter {int(f)}">'
                    f'<p>score (mean activation) <b>{a.scores[i]:.4g}</b>, rank {rank[int(f)]} of '
                    f'{len(a.filters)} in {_e(a.layer)}</p>'
                    + (_incoming_html(top, slugs, shown, slug) if top is not None else "")
                    + "<h2>Settings</h2>" + _settings_table(a.settings))
            _write(os.path.join(folder, name + ".html"),
                   _page(title=f"{title} · {a.layer} · {int(f)}", nav=" · ".join(nav_parts),
                         heading=f"{a.layer} filter {int(f)}", body=body))
        info = (f'<p>{_e(a.layer_type)}, output shape {_e(a.output_shape)}, {a.channels} channels; '
                f'{len(a.filters)} shown. Click a filter to enlarge it.</p>')
        _write(os.path.join(folder, "index.html"),
               _page(title=f"{title} · {a.layer}", nav='<a href="../index.html">index</a>',
                     heading=f"{title} · {a.layer}",
                     body=style_tile + info + f'<div class="grid">{"".join(figures)}</div>'))
        index_rows.append(
            f'<tr><td><a href="{_e(slug)}/index.html">{_e(a.layer)}</a></td><td>{_e(a.layer_type)}</td>'
            f'<td>{_e(a.output_shape)}</td><td>{a.channels}</td><td>{len(a.filters)}</td>'
            f'<td><a href="{_e(slug)}/index.html"><img class="thumb" src="{_e(slug)}/thumb.png" '
            f'alt="{_e(a.layer)} filters"></a></td></tr>')
    first = layers[0].settings
    body = ("<table><tr><th>layer</th><th>type</th><th>output shape</th><th>channels</th><th>shown</th>"
            f"<th>filters</th></tr>{''.join(index_rows)}</table><h2>Settings</h2>"
            + _settings_table({k: v for k, v in first.items() if k != "layer"}))
    index = os.path.join(out_dir, "index.html")
    _write(index, _page(title=title, nav="kerasviz gallery", heading=title, body=body))
    return index


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

