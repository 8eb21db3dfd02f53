"""The explorer's layer-wide views: a concepts page and an activation-atlas page (with a page per atlas cell).

```
out/<layer>/concepts.html        the layer's concepts: picture, importance, composition, top patches + heatmaps
out/<layer>/concept3.png         concept 3's picture (concept3-p0.png ... its patches, concept3-h0.png ... heatmaps)
out/<layer>/atlas-map.html       the activation atlas as one large image whose cells link to their pages
out/<layer>/cell-r02-c05.html    one cell: its icon, count, top class, the dataset patches nearest its mean
```

Each is computed once per layer from the user's images (`examples=`) by `kerasviz.concepts.concepts` and
`kerasviz.concepts.activation_atlas`; `compute` keeps what the pages show (a `LayerPage`: the pictures and a
JSON-able description) and caches it per layer, data and settings under `<cache root>/layer-views/`, so a
second run computes nothing. The templates (`concepts.html`, `atlas_map.html`, `cell.html`) escape every value.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from kerasviz import examples as kv_examples
from kerasviz import images, nets
from kerasviz.atlas import cache, pages, storage

LAYER_VIEWS = ("concepts", "atlas-map")  # the views that give a layer a page of its own
PAGE_FILES = {"concepts": "concepts.html", "atlas-map": "atlas-map.html"}
PAGE_LABELS = {"concepts": "concepts", "atlas-map": "activation atlas"}
LAYER_VIEWS_VERSION = 1  # bump when the meaning of the cached page files changes
LAYER_VIEWS_FOLDER = "layer-views"  # the subfolder of the cache root that holds them
COMPOSITION_TOP = 8  # units listed in a concept's composition, the largest weights first
COMPOSITION_MIN_SHARE = 0.01  # ... those with at least this share of the concept's weight
CELL_PATCHES = 9  # dataset patches shown per atlas cell


@dataclasses.dataclass
class LayerPage:
    """What a layer-wide view's pages show.

    Attributes:
        view: `"concepts"` or `"atlas-map"`.
        info: JSON-able: the page's text and numbers (per concept: its importance, composition, patches' scores
            and sources; per cell: its place, count, top class, patches' sources).
        pictures: file stem -> uint8 `(H, W, C)`, each written beside the page as `<stem>.png`.
    """

    view: str
    info: dict
    pictures: dict


# ------------------------------------------------------------------------------------------ computing


def compute(view: str, network: nets.Network, layer: str, examples, *, cache_dir: str | None = None,
            preset=None, **options) -> LayerPage:
    """A layer's `view` from the user's images, as its pages show it; cached.

    Args:
        view: `"concepts"` (`kerasviz.concepts`) or `"atlas-map"` (`kerasviz.activation_atlas`).
        network: a `Network`.
        layer: the layer's path.
        examples: the user's images: a folder, an array, a `tf.data.Dataset` (as `make_gallery` takes them).
        cache_dir: the cache root (the sampled activations and the page are cached there). Defaults to
            `kerasviz.atlas.default_cache_dir()`.
        preset: the preset of the pictures (a concept's, a cell's icon). Defaults to the view's own.
        **options: the run options and `Preset` fields, as in `make_gallery`.

    Returns:
        A `LayerPage`.
    """
    source = kv_examples.data_source(examples, "examples")
    root = cache_dir or cache.default_cache_dir()
    path = None
    if source.fingerprint() is not None:  # an iterable cannot be fingerprinted: not cached
        key = cache.cache_key({"version": LAYER_VIEWS_VERSION, "view": view, "model": network.name, "layer": layer,
                               "weights": cache.weights_fingerprint(network, layer, pre_activation=False),
                               "data": source.fingerprint(), "preset": str(preset),
                               "options": json.dumps(options, sort_keys=True, default=str)})
        path = storage.join(root, LAYER_VIEWS_FOLDER, f"{cache.slug(layer)}-{view}-{key}.npz")
        found = _load(path, view)
        if found is not None:
            return found
    keywords = dict(options, cache_dir=root, **({} if preset is None else {"preset": preset}))
    if view == "concepts":
        from kerasviz.concepts import concepts

        page = _concepts_page(concepts(network, layer, source, **keywords))
    else:
        from kerasviz.concepts.activation_atlas import activation_atlas

        page = _atlas_page(activation_atlas(network, layer, source, progress=False, **keywords), network, source)
    if path is not None:
        _save(path, page)
    return page


def _load(path: str, view: str) -> LayerPage | None:
    z = storage.read_arrays(path)
    if z is None:
        return None
    try:
        info = json.loads(str(z["info"]))
    except (KeyError, ValueError):
        return None  # a foreign file: recomputed
    return LayerPage(view, info, {name[len("picture:"):]: a for name, a in z.items() if name.startswith("picture:")})


def _save(path: str, page: LayerPage) -> None:
    storage.write_arrays(path, dict(info=np.array(json.dumps(page.info, sort_keys=True)),
                                    **{f"picture:{stem}": np.asarray(p) for stem, p in page.pictures.items()}))


def _concepts_page(c) -> LayerPage:
    """A `Concepts` as its page shows it."""
    pictures, cards = {}, []
    for i in range(len(c.basis)):
        stem = f"concept{i}"
        pictures[stem] = c.pictures[i]
        weights = np.asarray(c.basis[i], "float64")
        total = float(np.abs(weights).sum()) or 1.0
        composition = [[int(u), float(weights[u]), abs(float(weights[u])) / total]
                       for u in np.argsort(-np.abs(weights), kind="stable")[:COMPOSITION_TOP]
                       if abs(float(weights[u])) / total >= COMPOSITION_MIN_SHARE]
        overlays = c.overlays(i) if c.top_images is not None else ()
        patches = []
        for j, patch in enumerate(c.patches[i]):
            pictures[f"{stem}-p{j}"] = c.crops[i][j]
            heat = None
            if j < len(overlays):
                heat = f"{stem}-h{j}"
                pictures[heat] = overlays[j]
            patches.append(dict(crop=f"{stem}-p{j}", heat=heat, score=float(patch.score),
                                source=c.source.source_name(int(patch.image_index))))
        cards.append(dict(index=i, picture=stem, composition=composition, patches=patches,
                          importance=None if c.importance is None else float(c.importance[i])))
    if c.importance is not None:
        cards = [cards[i] for i in np.argsort(-np.asarray(c.importance), kind="stable")]
    return LayerPage("concepts", dict(method=str(c.method), cards=cards, ranked=c.importance is not None,
                                      class_index=c.class_index), pictures)


def pick_images(source: kv_examples.DataSource, wanted, *, size, channels: int, batch_size: int = 32) -> dict:
    """The images `wanted` (indices in the data's order) as uint8 arrays, read in one streamed pass.

    Args:
        source: a `kerasviz.examples.DataSource`.
        wanted: image indices.
        size: the `(height, width)` folder images are resized to (as the view saw them).
        channels: the model's input channels.
        batch_size: images per read. Defaults to 32.

    Returns:
        index -> uint8 `(H, W, C)`, for the indices the data holds.
    """
    wanted, out, start = {int(i) for i in wanted}, {}, 0
    if not wanted:
        return out
    for batch in source.batches(size=size, channels=channels, batch_size=batch_size):
        for j in range(len(batch.images)):
            if start + j in wanted:
                out[start + j] = images.to_uint8(batch.images[j])
        start += len(batch.images)
        if start > max(wanted):
            break
    return out


def _crop(image: np.ndarray, box) -> np.ndarray:
    """`image[top:bottom, left:right]`, gray where the box reaches past the border."""
    top, left, bottom, right = (int(v) for v in box)
    h, w = image.shape[:2]
    out = np.full((max(bottom - top, 1), max(right - left, 1), image.shape[2]),
                  int(round(kv_examples.CROP_PAD_VALUE * 255)), "uint8")
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return out


def _atlas_page(a, network: nets.Network, source) -> LayerPage:
    """An `ActivationAtlas` as its pages show it: the patches of each cell's nearest vectors cut from the images
    (their receptive field; the whole image for a layer whose positions see all of it)."""
    s = a.samples
    members = {id(cell): [int(m) for m in list(cell.members)[:CELL_PATCHES]] for cell in a.cells}
    seen = pick_images(source, {int(s.image_index[m]) for ms in members.values() for m in ms},
                       size=s.image_size, channels=network.input_channels)
    field = None
    if seen and tuple(s.grid) != (1, 1):
        try:
            field = nets.receptive_field(network, a.layer, input_size=next(iter(seen.values())).shape[:2])
        except ValueError:  # no convolution geometry (a token layer's attention mixes every position)
            field = None
    pictures, cells = {"atlas-map": a.image}, []
    for cell in a.cells:
        stem = f"cell-r{int(cell.row):02d}-c{int(cell.col):02d}"
        pictures[stem] = cell.icon
        patches = []
        for j, m in enumerate(members[id(cell)]):
            image = seen.get(int(s.image_index[m]))
            if image is not None:
                box = None if field is None else field.box((int(s.y[m]), int(s.x[m])))
                pictures[f"{stem}-p{j}"] = image if box is None else _crop(image, box)
                patches.append(dict(crop=f"{stem}-p{j}", source=source.source_name(int(s.image_index[m]))))
        cells.append(dict(file=stem, row=int(cell.row), col=int(cell.col), count=int(cell.count),
                          top_class=None if cell.top_class is None else int(cell.top_class), patches=patches))
    return LayerPage("atlas-map", dict(grid=int(a.grid), total=int(len(s.vectors)), cells=cells, whole=field is None,
                                       class_index=a.class_index), pictures)


# ------------------------------------------------------------------------------------------ writing


def write_pages(folder: str, page: LayerPage, *, layer: str, href, title: str) -> None:
    """Write a layer's page of a view (and, for the atlas, its cell pages) and their pictures into `folder`.

    Args:
        folder: the layer's folder in the site.
        page: what the view shows (`LayerPage`).
        layer: the layer's path.
        href: unit -> its unit page's address from this folder, or None when the gallery has none.
        title: the site's title.
    """
    for stem, picture in page.pictures.items():
        pages.save_png(picture, os.path.join(folder, f"{stem}.png"))
    heading, info = f"{title} · {layer}", page.info
    base = dict(title=heading, layer=layer)
    if page.view == "concepts":
        cards = [dict(card, composition=[(unit, weight, share, href(unit))
                                         for unit, weight, share in card["composition"]]) for card in info["cards"]]
        pages.write_text(os.path.join(folder, PAGE_FILES["concepts"]), pages.render(
            "concepts.html", **base, heading=f"{heading} · concepts", method=info["method"], cards=cards,
            ranked=info["ranked"], class_index=info["class_index"]))
        return
    grid = info["grid"]
    cells = [dict(cell, top=100.0 * cell["row"] / grid, left=100.0 * cell["col"] / grid, side=100.0 / grid)
             for cell in info["cells"]]
    pages.write_text(os.path.join(folder, PAGE_FILES["atlas-map"]), pages.render(
        "atlas_map.html", **base, heading=f"{heading} · activation atlas", image="atlas-map.png", cells=cells,
        grid=grid, total=info["total"], class_index=info["class_index"]))
    for cell in cells:
        pages.write_text(os.path.join(folder, f"{cell['file']}.html"), pages.render(
            "cell.html", **base, heading=f"{heading} · atlas cell ({cell['row']}, {cell['col']})", cell=cell,
            whole=info["whole"]))
