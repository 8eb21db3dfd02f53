"""The explorer's layer-wide views: a concepts page and an activation-atlas page (with a page per atlas cell).

```
out/<layer>/concepts.html        the layer's concepts: picture, importance, composition, top patches + heatmaps
out/<layer>/concept3.png         concept 3's picture (concept3-p0.png ... its patches, concept3-h0.png ... heatmaps)
out/<layer>/atlas-map.html       the activation atlas as one large image whose cells link to their pages
out/<layer>/cell-r02-c05.html    one cell: its icon, count, top class, the dataset patches nearest its mean
```

Each is computed once per layer from the user's images (`examples=`): `kerasviz.concepts.concepts` and
`kerasviz.concepts.activation_atlas` do the work; this module keeps what a page needs (the result and the few
images its patches are cut from, read in one streamed pass) and turns it into the template's context. The
templates (`concepts.html`, `atlas_map.html`, `cell.html`) escape every value.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np

from kerasviz import examples as kv_examples
from kerasviz import images, nets
from kerasviz.atlas import pages

LAYER_VIEWS = ("concepts", "atlas-map")  # the views that give a layer a page of its own
PAGE_FILES = {"concepts": "concepts.html", "atlas-map": "atlas-map.html"}
PAGE_LABELS = {"concepts": "concepts", "atlas-map": "activation atlas"}
COMPOSITION_TOP = 8  # units listed in a concept's composition, the largest weights first
CONCEPT_PATCHES = 6  # top patches shown per concept
CELL_PATCHES = 9  # dataset patches shown per atlas cell


@dataclasses.dataclass
class LayerPage:
    """A layer-wide view, as its pages show it.

    Attributes:
        result: what was computed: a `Concepts` or an `ActivationAtlas`.
        images: image index -> uint8 `(H, W, C)`: the user's images the pages cut patches from (only those).
    """

    result: object
    images: dict


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
    wanted, out, start = set(int(i) for i in wanted), {}, 0
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
    pad = int(round(kv_examples.CROP_PAD_VALUE * 255))
    out = np.full((max(bottom - top, 1), max(right - left, 1), image.shape[2]), pad, "uint8")
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return out


def _overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """A `(rows, cols)` map over the image, upsampled and scaled by its own peak."""
    from kerasviz import analysis
    from kerasviz.atlas import views

    heat = analysis.upsample(np.asarray(heat, "float32"), image.shape[:2])
    low, high = min(0.0, float(heat.min())), float(heat.max())
    scaled = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    return views.overlay(image.astype("float32") / 255.0, scaled)


def compute(view: str, network: nets.Network, layer: str, examples, *, cache_dir: str | None = None,
            preset=None, **options) -> LayerPage:
    """A layer's `view` from the user's images: the result and the images its pages cut patches from.

    Args:
        view: `"concepts"` (`kerasviz.concepts`) or `"atlas-map"` (`kerasviz.activation_atlas`).
        network: a `Network`.
        layer: the layer's path.
        examples: the user's images: a folder, an array, a `tf.data.Dataset` (as `make_gallery` takes them).
        cache_dir: the cache root (the sampled activations are cached there). Defaults to the default cache.
        preset: the preset of the pictures (a concept's, a cell's icon). Defaults to `"quality"`.
        **options: the run options and `Preset` fields, as in `make_gallery`.

    Returns:
        A `LayerPage`.
    """
    source = kv_examples.data_source(examples, "examples")
    if view == "concepts":
        from kerasviz.concepts import concepts

        result = concepts(network, layer, source, cache_dir=cache_dir, preset=preset, **options)
        wanted = {int(p.image_index) for patches in result.patches for p in patches[:CONCEPT_PATCHES]}
        size = result.samples.image_size
    else:
        from kerasviz.concepts import activation_atlas

        result = activation_atlas(network, layer, source, cache_dir=cache_dir, preset=preset, **options)
        wanted = {int(result.samples.image_index[m]) for cell in result.cells
                  for m in list(cell.members)[:CELL_PATCHES]}
        size = result.samples.image_size
    return LayerPage(result, pick_images(source, wanted, size=size, channels=network.input_channels))


# ------------------------------------------------------------------------------------------ concepts


def concepts_context(folder: str, page: LayerPage, href: Callable[[int], str | None]) -> dict:
    """Write the concepts' PNGs into `folder` and return the `concepts.html` template's context.

    Args:
        folder: the layer's folder in the site.
        page: the layer's `LayerPage` holding a `Concepts`.
        href: unit -> its page's address in the folder, or None when the gallery has none.
    """
    c = page.result
    importance = None if c.importance is None else np.asarray(c.importance, "float64")
    cards = []
    for i in range(len(c.basis)):
        stem = f"concept{i}"
        pages.save_png(c.pictures[i], os.path.join(folder, f"{stem}.png"))
        weights = np.asarray(c.basis[i], "float64")
        total = float(np.abs(weights).sum()) or 1.0
        composition = [(int(u), float(weights[u]), abs(float(weights[u])) / total, href(int(u)))
                       for u in np.argsort(-np.abs(weights), kind="stable")[:COMPOSITION_TOP]]
        patches = []
        heatmaps = c.heatmaps[i] if c.heatmaps is not None else ()
        for j, patch in enumerate(c.patches[i][:CONCEPT_PATCHES]):
            image = page.images.get(int(patch.image_index))
            if image is None:
                continue
            crop, heat = f"{stem}-p{j}.png", None
            pages.save_png(_crop(image, patch.box), os.path.join(folder, crop))
            if j < len(heatmaps):
                heat = f"{stem}-h{j}.png"
                pages.save_png(_overlay(image, heatmaps[j]), os.path.join(folder, heat))
            patches.append(dict(crop=crop, heat=heat, score=float(patch.score),
                                source=page_source(c, int(patch.image_index))))
        cards.append(dict(index=i, picture=f"{stem}.png", composition=composition, patches=patches,
                          importance=None if importance is None else float(importance[i])))
    order = list(range(len(cards))) if importance is None else [int(i) for i in np.argsort(-importance, kind="stable")]
    return dict(method=str(c.method), cards=[cards[i] for i in order], ranked=importance is not None,
                class_index=getattr(c, "class_index", None))


def page_source(result, image_index: int) -> str:
    """The name of one of the view's images: its file path in the folder, or `#<index>`."""
    source = getattr(result, "source", None)
    if source is None and getattr(result, "samples", None) is not None:
        source = result.samples.source
    return source.source_name(image_index) if source is not None else f"#{image_index}"


# ------------------------------------------------------------------------------------------ activation atlas


def cell_file(cell) -> str:
    return f"cell-r{int(cell.row):02d}-c{int(cell.col):02d}"


def _grid(atlas) -> tuple[int, int]:
    grid = atlas.grid
    return (int(grid), int(grid)) if np.ndim(grid) == 0 else (int(grid[0]), int(grid[1]))


def atlas_context(folder: str, page: LayerPage, network: nets.Network, layer: str) -> tuple[dict, list]:
    """Write the atlas's PNGs into `folder` and return the `atlas_map.html` context and each cell page's.

    Args:
        folder: the layer's folder in the site.
        page: the layer's `LayerPage` holding an `ActivationAtlas`.
        network: the `Network`, for the receptive field of a position (the patch a sample came from).
        layer: the layer's path.

    Returns:
        `(atlas page context, [(cell file stem, cell page context), ...])`.
    """
    a = page.result
    pages.save_png(a.image, os.path.join(folder, "atlas-map.png"))
    rows, cols = _grid(a)
    samples = a.samples
    size = next(iter(page.images.values())).shape[:2] if page.images else None
    field = None
    if size is not None:
        try:
            field = nets.receptive_field(network, layer, input_size=size)
        except ValueError:  # no spatial geometry (attention mixes every position): the whole image
            field = None
    cells, pages_out = [], []
    for cell in a.cells:
        stem = cell_file(cell)
        pages.save_png(cell.icon, os.path.join(folder, f"{stem}.png"))
        cells.append(dict(file=stem, row=int(cell.row), col=int(cell.col), count=int(cell.count),
                          top=100.0 * int(cell.row) / rows, left=100.0 * int(cell.col) / cols,
                          height=100.0 / rows, width=100.0 / cols))
        patches = []
        for j, m in enumerate(list(cell.members)[:CELL_PATCHES]):
            index = int(samples.image_index[m])
            image = page.images.get(index)
            if image is None:
                continue
            y, x = int(samples.y[m]), int(samples.x[m])
            crop = image if field is None else _crop(image, field.box((y, x)))
            pages.save_png(crop, os.path.join(folder, f"{stem}-p{j}.png"))
            patches.append(dict(crop=f"{stem}-p{j}.png", source=page_source(a, index), position=(y, x)))
        pages_out.append((stem, dict(cell=cells[-1], icon=f"{stem}.png", patches=patches,
                                     top_class=None if cell.top_class is None else int(cell.top_class),
                                     whole=field is None)))
    return dict(image="atlas-map.png", cells=cells, rows=rows, cols=cols, total=int(len(samples.vectors))), pages_out


def write_pages(folder: str, view: str, page: LayerPage, *, network, layer: str, href, context: dict) -> None:
    """Write a layer's page of `view` (and, for the atlas, its cell pages) into the layer's `folder`.

    Args:
        folder: the layer's folder.
        view: `"concepts"` or `"atlas-map"`.
        page: what the view computed (`LayerPage`).
        network: the `Network`.
        layer: the layer's path.
        href: unit -> its unit page's address from this folder, or None.
        context: the values every page of the layer gets (`title`, `layer`).
    """
    title = f"{context['title']} · {layer}"
    if view == "concepts":
        pages.write_text(os.path.join(folder, PAGE_FILES[view]), pages.render(
            "concepts.html", **context, heading=f"{title} · concepts", **concepts_context(folder, page, href)))
        return
    main, cells = atlas_context(folder, page, network, layer)
    pages.write_text(os.path.join(folder, PAGE_FILES[view]), pages.render(
        "atlas_map.html", **context, heading=f"{title} · activation atlas", **main))
    for stem, cell in cells:
        pages.write_text(os.path.join(folder, f"{stem}.html"), pages.render(
            "cell.html", **context, heading=f"{title} · atlas cell ({cell['cell']['row']}, {cell['cell']['col']})",
            **cell))
