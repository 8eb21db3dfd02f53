"""A static HTML gallery of a model's filters, browsable from the file system: the explorer (like OpenAI Microscope).

```
out/index.html                 every layer in model order: type, output shape, channels, a strip of its units
out/<layer>/index.html         every unit of the layer with its score, sortable by index or by score
out/<layer>/f00012.html        one unit: its pictures, dataset examples, incoming and outgoing units, settings
out/<layer>/f00012.png         its picture (f00012-neg.png, f00012-div0.png ..., f00012-ex0.png ..., f00012-heat.png)
out/<layer>/thumb.png          a mosaic of the layer's first units
out/static/explorer.css        the one stylesheet of every page
out/static/explorer.js         the one script: sorting, search (`12` or `layer:12`) and keys
out/static/site.js             the site's layers and units, for the search
```

Static files only: no network asset, no server; the pages work opened from the file system. The pages come
from Jinja2 templates with autoescape (`pages.render`), so every layer name, file name and setting is escaped
by the template engine (and the site's data goes through JSON with `<` and `>` escaped). `make_gallery` writes the
pages of each layer as soon as its atlas is done (the others show as pending), then adds the extra views.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterable, Sequence

import numpy as np

from kerasviz import atlas as atlas_lib
from kerasviz import nets, optimize
from kerasviz.atlas import layer_views, pages, pictures
from kerasviz.atlas import links as links_lib
from kerasviz.atlas.cache import slug
from kerasviz.engine import presets
from kerasviz.engine.progress import Callback, FilterBar

THUMBNAIL_TILES = 16  # filters in a layer's thumb.png mosaic
THUMBNAIL_WIDTH = 192  # px
STRIP_UNITS = 8  # units in a layer's strip on the index page, the strongest first
DEFAULT_TOP_K = 6  # incoming and outgoing units listed on a unit page
EXAMPLES_TOP_K = 9  # dataset examples per unit
STATIC = "static"  # the folder of the shared stylesheet and script, in the site and in this package
STATIC_FILES = ("explorer.css", "explorer.js")
RESERVED = {STATIC, "index.html"}  # names a layer folder cannot take
VIEW_LABELS = {"negative": "negative", "diverse": "diverse"}


@dataclasses.dataclass
class LayerViews:
    """The extra views of one layer (empty when not asked for): its units' (each filter -> what its page
    shows) and the layer's own pages.

    Attributes:
        negative: filter -> `pictures.UnitPicture`, the picture that drives it lowest.
        diverse: filter -> list of `pictures.UnitPicture`.
        examples: filter -> list of `views.Example` (crop, activation, source), strongest first.
        heatmaps: filter -> uint8 `(H, W, 3)` overlay of its activation on the user's image.
        image_name: the user image's name, for the heatmap's caption.
        accentuated: filter -> list of `views.Accented`: its top dataset examples, accentuated for it.
        alpha: filter -> `pictures.UnitPicture` with its transparency map: its MACO picture, for an atlas whose
            cache holds no map of its own.
        pages: view name -> what the layer's own page of that view shows (`layer_views.LAYER_VIEWS`).
    """

    negative: dict = dataclasses.field(default_factory=dict)
    diverse: dict = dataclasses.field(default_factory=dict)
    examples: dict = dataclasses.field(default_factory=dict)
    heatmaps: dict = dataclasses.field(default_factory=dict)
    image_name: str = "the image"
    accentuated: dict = dataclasses.field(default_factory=dict)
    alpha: dict = dataclasses.field(default_factory=dict)
    pages: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PendingLayer:
    """A layer the gallery will show once its atlas is done."""

    layer: str
    layer_type: str
    output_shape: tuple | None
    channels: int


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


def _filter_file(f: int) -> str:
    return f"f{int(f):05d}"


class _Site:
    """The gallery being written: the layers in model order, those done and those pending."""

    def __init__(self, out_dir: str, network, title: str, *, top_k: int, tile: int, order: Sequence[str],
                 requested: dict | None = None, pending: dict | None = None):
        self.out_dir, self.network, self.title, self.top_k, self.tile = out_dir, network, title, top_k, tile
        self.order = list(order)
        self.slugs = _slugs(self.order)
        self.requested = dict(requested or {})  # layer -> every unit asked for
        self.pending = dict(pending or {})  # layer -> PendingLayer, not yet done
        self.done: dict[str, atlas_lib.LayerAtlas] = {}
        self.views: dict[str, LayerViews] = {}
        self._graph = None
        self._alphas: dict[str, dict] = {}
        os.makedirs(out_dir, exist_ok=True)

    def extra_pages(self, name: str) -> list[tuple[str, str]]:
        """The layer's own pages (concepts, activation atlas) as `(file, label)`, in the layer's folder."""
        pages_of = self.views[name].pages if name in self.views else {}
        return [(layer_views.PAGE_FILES[v], layer_views.PAGE_LABELS[v]) for v in layer_views.LAYER_VIEWS
                if v in pages_of]

    def alphas(self, a) -> dict:
        """The transparency maps of a layer atlas's own pictures, read from its cache once."""
        if a.layer not in self._alphas:
            self._alphas[a.layer] = pictures.alpha_maps(a)
        return self._alphas[a.layer]

    def graph(self):
        if self.network is None or self.top_k <= 0:
            return None
        if self._graph is None:
            self._graph = links_lib.Graph(self.network, {})
        self._graph.shown = {name: set(int(f) for f in a.filters) for name, a in self.done.items()}
        return self._graph

    def href(self, here: str, layer: str, unit: int) -> str | None:
        """The address of `layer`'s unit page from a page of layer `here`, or None when it has none."""
        a = self.done.get(layer)
        if a is None or int(unit) not in set(int(f) for f in a.filters):
            return None
        prefix = "" if layer == here else f"../{self.slugs[layer]}/"
        return f"{prefix}{_filter_file(unit)}.html"

    def write_static(self) -> None:
        folder = os.path.join(self.out_dir, STATIC)
        os.makedirs(folder, exist_ok=True)
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), STATIC)
        for name in STATIC_FILES:
            shutil.copyfile(os.path.join(here, name), os.path.join(folder, name))
        layers = []
        for name in self.order:
            done = [int(f) for f in self.done[name].filters] if name in self.done else []
            todo = [int(f) for f in self.requested.get(name, ()) if int(f) not in set(done)]
            layers.append({"name": name, "slug": self.slugs[name], "units": done, "pending": todo})
        text = json.dumps({"layers": layers}, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")
        pages.write_text(os.path.join(folder, "site.js"), f"window.KV_SITE = {text};\n")

    def write_index(self) -> str:
        rows = []
        for name in self.order:
            a = self.done.get(name)
            strip = [] if a is None else [(int(a.filters[i]), _filter_file(a.filters[i]), float(a.scores[i]))
                                          for i in np.argsort(-a.scores, kind="stable")[:STRIP_UNITS]]
            info = a or self.pending[name]  # the layer's type, output shape and channels
            rows.append(dict(name=name, slug=self.slugs[name], done=a is not None, strip=strip,
                             shown=0 if a is None else len(a.filters), layer_type=info.layer_type,
                             output_shape=info.output_shape, channels=info.channels, extra=self.extra_pages(name)))
        settings = []
        if self.done:
            first = next(iter(self.done.values())).settings
            settings = pages.settings_rows({k: v for k, v in first.items() if k != "layer"})
        index = os.path.join(self.out_dir, "index.html")
        pages.write_text(index, pages.render("index.html", title=self.title, heading=self.title, rows=rows,
                                             settings=settings))
        return index

    def write_pending(self, name: str) -> None:
        folder = os.path.join(self.out_dir, self.slugs[name])
        os.makedirs(folder, exist_ok=True)
        pages.write_text(os.path.join(folder, "index.html"),
               pages.render("pending.html", title=f"{self.title} · {name}", heading=f"{self.title} · {name}",
                            layer=name, info=self.pending[name]))

    def add(self, a: atlas_lib.LayerAtlas) -> None:
        """A layer is done: write its pages, the search data and the index."""
        if not len(a.filters):
            return
        self.done[a.layer] = a
        self.pending.pop(a.layer, None)
        self.write_layer(a.layer)
        self.write_static()
        self.write_index()

    def write_all(self) -> str:
        self.write_static()
        for name in self.order:
            if name in self.done:
                self.write_layer(name)
            else:
                self.write_pending(name)
        return self.write_index()

    def write_layer(self, name: str) -> None:
        """A layer's pictures, its unit pages and its page."""
        a, views = self.done[name], self.views.get(name, LayerViews())
        folder = os.path.join(self.out_dir, self.slugs[name])
        os.makedirs(folder, exist_ok=True)
        pages.save_png(pages.thumbnail(a.images, THUMBNAIL_WIDTH, THUMBNAIL_TILES), os.path.join(folder, "thumb.png"))
        revived = {int(f) for f in getattr(a, "revived", None) or ()}
        order = np.argsort(-a.scores, kind="stable")
        rank = {int(a.filters[i]): r + 1 for r, i in enumerate(order)}
        for page in views.pages.values():
            layer_views.write_pages(folder, page, layer=name, href=lambda unit: self.href(name, name, unit),
                                    title=self.title)
        extra = self.extra_pages(name)
        units = []
        for i, f in enumerate(a.filters):
            f, score = int(f), float(a.scores[i])
            stem = _filter_file(f)
            pages.save_png(a.images[i], os.path.join(folder, stem + ".png"))
            units.append(dict(unit=f, file=stem, score=score, revived=f in revived))
            incoming, incoming_what, outgoing = self._links(name, f)
            pages.write_text(os.path.join(folder, stem + ".html"), pages.render(
                "unit.html", title=f"{self.title} · {name} · {f}", heading=f"{name} filter {f}", layer=name,
                prev=_filter_file(a.filters[i - 1]) if i > 0 else None,
                next=_filter_file(a.filters[i + 1]) if i + 1 < len(a.filters) else None,
                score=score, rank=rank[f], total=len(a.filters), revived=f in revived,
                incoming=incoming, incoming_what=incoming_what, outgoing=outgoing,
                settings=pages.settings_rows(a.settings), extra=extra, **self._views(folder, a, i, views)))
        done = set(int(f) for f in a.filters)
        pages.write_text(os.path.join(folder, "index.html"), pages.render(
            "layer.html", title=f"{self.title} · {name}", heading=f"{self.title} · {name}", layer=name, info=a,
            units=units, pending=[int(f) for f in self.requested.get(name, ()) if int(f) not in done],
            revived=len(revived & done), tile=int(self.tile), extra=extra))

    def _views(self, folder: str, a, i: int, views: LayerViews) -> dict:
        """The unit's pictures (its own, negative, diverse), the heatmap over the user's image, its dataset
        examples, for its page; their PNGs are written beside the page."""
        f = int(a.filters[i])
        stem = _filter_file(f)
        figures = [(f"{stem}.png", f"positive · {float(a.scores[i]):.3g}", "positive")]
        if f in views.negative:
            pages.save_png(views.negative[f].image, os.path.join(folder, f"{stem}-neg.png"))
            figures.append((f"{stem}-neg.png", f"negative · {views.negative[f].score:.3g}", "negative"))
        for j, pic in enumerate(views.diverse.get(f, ())):
            pages.save_png(pic.image, os.path.join(folder, f"{stem}-div{j}.png"))
            figures.append((f"{stem}-div{j}.png", f"diverse {j + 1} · {pic.score:.3g}", "diverse"))
        if f in self.alphas(a):  # the atlas's own picture has a transparency map (a MACO atlas)
            pages.save_png(pages.over_checkerboard(a.images[i], self.alphas(a)[f]),
                           os.path.join(folder, f"{stem}-alpha.png"))
            figures.append((f"{stem}-alpha.png", "transparency", "alpha"))
        maco = views.alpha.get(f)
        if maco is not None:
            pages.save_png(maco.image, os.path.join(folder, f"{stem}-maco.png"))
            figures.append((f"{stem}-maco.png", f"maco · {maco.score:.3g}", "maco"))
            if maco.alpha is not None:
                pages.save_png(pages.over_checkerboard(maco.image, maco.alpha),
                               os.path.join(folder, f"{stem}-maco-alpha.png"))
                figures.append((f"{stem}-maco-alpha.png", "maco · transparency", "alpha"))
        heatmap = None
        if f in views.heatmaps:
            heatmap = f"{stem}-heat.png"
            pages.save_png(views.heatmaps[f], os.path.join(folder, heatmap))
        examples = []
        for j, ex in enumerate(views.examples.get(f, ())):
            pages.save_png(np.asarray(ex.crop), os.path.join(folder, f"{stem}-ex{j}.png"))
            examples.append((f"{stem}-ex{j}.png", float(ex.activation), str(ex.source), pages.short_name(ex.source)))
        never_fired = bool(examples) and max(activation for _, activation, _, _ in examples) <= 0
        accentuated = []
        for j, acc in enumerate(views.accentuated.get(f, ())):
            before, after = f"{stem}-acc{j}-photo.png", f"{stem}-acc{j}.png"
            pages.save_png(acc.photo, os.path.join(folder, before))
            pages.save_png(acc.image, os.path.join(folder, after))
            accentuated.append(dict(before=before, after=after, gain=acc.gain, distance=acc.distance,
                                    source=str(acc.source), name=pages.short_name(acc.source)))
        return dict(figures=figures, heatmap=heatmap, image_name=views.image_name, examples=examples,
                    never_fired=never_fired, accentuated=accentuated)

    def _links(self, name: str, f: int) -> tuple[list, str, list]:
        """The unit's incoming link cards, the sentence that says what they are, and its outgoing cards."""
        graph = self.graph()
        if graph is None or name not in graph.layers:
            return [], "", []
        try:
            incoming, what = graph.incoming(name, f, self.top_k)
            outgoing = graph.outgoing(name, f, self.top_k)
        except (ValueError, TypeError, KeyError, IndexError):  # a layer whose weights cannot be read as channels
            return [], "", []

        def href(layer, unit):
            return self.href(name, layer, unit)

        return pages.link_cards(incoming, href), what, pages.link_cards(outgoing, href)


def _layers_of(atlases) -> list:
    if isinstance(atlases, atlas_lib.ModelAtlas):
        return list(atlases.layers.values())
    if isinstance(atlases, atlas_lib.LayerAtlas):
        return [atlases]
    if isinstance(atlases, (list, tuple)) and all(isinstance(a, atlas_lib.LayerAtlas) for a in atlases):
        return list(atlases)
    raise TypeError(f"atlases must be a ModelAtlas, a LayerAtlas or a list of LayerAtlas. "
                    f"Received: {type(atlases).__name__}.")


def write_gallery(
    atlases,
    out_dir: str | os.PathLike,
    *,
    network: nets.Network | None = None,
    title: str | None = None,
    top_k: int = DEFAULT_TOP_K,
    tile: int = 128,
    views: dict | None = None,
) -> str:
    """Write a static HTML gallery of layer atlases.

    Args:
        atlases: a `ModelAtlas`, a `LayerAtlas` or a list of `LayerAtlas`.
        out_dir: the folder to write (created; existing gallery files are overwritten).
        network: the `Network` the atlases came from, for the incoming and outgoing units. Defaults to the
            `ModelAtlas`'s own.
        title: the page title. Defaults to the model's name.
        top_k: incoming and outgoing units listed per unit; 0 for none. Defaults to 6.
        tile: display size of each filter on a layer page, in CSS pixels. Defaults to 128.
        views: layer -> `LayerViews`, the extra views of its unit pages (as `make_gallery` computes them).
            Defaults to None (none).

    Returns:
        The path of `index.html`.

    Raises:
        TypeError: `atlases` is not an atlas or a list of them.
        ValueError: no atlas holds any picture.

    Example:
    >>> atlases = kv.atlas.model_atlas("VGG16", ["block1_conv2"], weights="hed", filters=range(2),
    ...                                preset="fast", size=32, steps=4, progress=False)
    >>> kv.write_gallery(atlases, "site")
    'site/index.html'
    """
    layers = [a for a in _layers_of(atlases) if len(a.filters)]
    if isinstance(atlases, atlas_lib.ModelAtlas):
        network = network if network is not None else atlases.network
        title = title or atlases.model
    if not layers:
        raise ValueError("The atlases hold no picture: nothing to put in a gallery.")
    title = title or (network.name if network is not None else "kerasviz gallery")
    site = _Site(os.fspath(out_dir), network, title, top_k=top_k, tile=tile, order=[a.layer for a in layers])
    site.done = {a.layer: a for a in layers}
    site.views = dict(views or {})
    return site.write_all()


def _pending(network, path: str) -> PendingLayer:
    _, layer = nets.find_layer(network, path)
    return PendingLayer(path, type(layer).__name__, nets.output_shape(layer), nets.channels_of(network, path))


def make_gallery(
    model,
    out_dir: str | os.PathLike,
    layers: Sequence[str] | None = None,
    *,
    filters: Iterable[int] | str = "all",
    top_k: int = DEFAULT_TOP_K,
    views: Sequence[str] | str | None = None,
    examples=None,
    image=None,
    class_index: int | None = None,
    view_settings: dict | None = None,
    title: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    preset: str | presets.Preset | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    **options,
) -> tuple[str, atlas_lib.ModelAtlas]:
    """Compute (or read from the cache) the atlases of a model's layers and write their gallery as they finish.

    The index and a pending page for every layer are written first; each layer's pages appear as soon as its
    atlas is done, so a long run can be browsed while it runs. The extra views follow, each with its own
    progress bar that says what it costs; everything is cached, so a second call computes nothing.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        out_dir: the folder to write.
        layers: layer names. Defaults to the layers worth a picture (`kerasviz.nets.visual_layers`): every
            convolution layer of a convnet; each block's MLP hidden layer and output of a vision transformer.
        filters: `"all"` or indices, applied to each layer (indices past a layer's channels are skipped).
            Defaults to `"all"`.
        top_k: incoming and outgoing units listed per unit. Defaults to 6.
        views: extra pictures per unit: `"negative"` (the picture that drives it lowest: one more run per
            unit) and/or `"diverse"` (4 different pictures: 4 images per unit), a list or a comma-separated
            str. Defaults to None (none).
        examples: dataset examples (the top 9 images per unit, cropped to its receptive field): a folder of
            images, a NumPy array of images or a `tf.data.Dataset`; read in batches, never all in memory.
            Defaults to None (none).
        image: a path or array: each unit's activation over it as a heatmap overlay. Defaults to None.
        class_index: the class (an output index of a classifier) the concepts' importance is for; None for no
            importance. Defaults to None.
        view_settings: view -> keywords of the function that computes it, e.g. `{"concepts": {"n": 6},
            "atlas-map": {"grid": 10, "budget": 20_000}, "alpha": {"steps": 128}}` (`kerasviz.concepts.concepts`,
            `kerasviz.concepts.activation_atlas.activation_atlas`, `kerasviz.accentuate`; `Preset` fields for the
            pictures of negative, diverse and alpha), over the gallery's settings. Defaults to None.
        title: the page title. Defaults to the model's name.
        cache_dir: the cache of the atlases, the extra views and the dataset examples. Defaults to
            `$KERASVIZ_CACHE` or `~/.cache/kerasviz/atlas`.
        preset: a preset name or `Preset`, for the atlases and the extra views. Defaults to `"quality"`.
        progress: show progress bars with an ETA. Defaults to True.
        callbacks: extra `Callback` objects, told about each batch of the atlases.
        **options: as in `kerasviz.atlas.model_atlas`: the model's (`weights`, `preprocess`, `input_range`,
            `other_inputs`: the `Network` is built once, here), the run's (`batch_size`, `memory_budget`, `seed`,
            `distribute`, `block_steps`: `kerasviz.optimize.RunOptions`) and `Preset` fields (`size`, `steps`,
            ...). The extra views take the same, but run here (`distribute` is the atlases' only).

    Returns:
        `(index_path, model_atlas)`. After an interruption the gallery holds what was done and
        `model_atlas.interrupted` is True.

    Raises:
        ValueError: an unknown view, layer or setting; an `examples` folder or `image` file that is not there.

    Example:
    >>> index, atlases = kv.make_gallery("VGG16", "site", ["block1_conv2"], weights="hed", filters=range(2),
    ...                                  preset="fast", size=32, steps=4, views="negative",
    ...                                  examples="photos/", progress=False)
    >>> index
    'site/index.html'
    """
    wanted = pictures.check_views(views)
    view_settings = dict(view_settings or {})
    if set(view_settings) - set(wanted):
        raise ValueError(f"view_settings names views not asked for: {sorted(set(view_settings) - set(wanted))}. "
                         f"Expected some of views={list(wanted)}; add the view to views= or drop its settings.")
    needs = [v for v in wanted if v in pictures.DATA_VIEWS]
    if needs and examples is None:
        raise ValueError(f"views={','.join(needs)!r} need your images: give examples= a folder of images, an "
                         f"array or a tf.data.Dataset (--examples DIR on the command line).")
    for name, value, is_there in (("examples", examples, os.path.isdir), ("image", image, os.path.isfile)):
        if isinstance(value, (str, os.PathLike)) and not is_there(value):
            kind = "a folder of images" if name == "examples" else "an image file"
            raise ValueError(f"{name}={os.fspath(value)!r} is not {kind}. Give {kind} (or an array).")
    network, run, overrides = optimize.split_options(model, options)
    paths = list(layers) if layers is not None and not isinstance(layers, str) else [layers] if layers else None
    paths = [nets.find_layer(network, name)[0] for name in (paths or nets.visual_layers(network))]
    if not paths:
        raise ValueError(f"{network.name} has no convolution or token layer to show by default; name the layers "
                         f"to visualize (`kerasviz layers` lists them).")
    requested = {}
    for path in paths:
        channels = nets.channels_of(network, path)
        requested[path] = (list(range(channels)) if isinstance(filters, str) else
                           [int(f) for f in filters if int(f) < channels])
    paths = [p for p in paths if requested[p]]
    site = _Site(os.fspath(out_dir), network, title or network.name, top_k=top_k, tile=128, order=paths,
                 requested=requested, pending={p: _pending(network, p) for p in paths})
    index = site.write_all()
    result = atlas_lib.model_atlas(network, paths, filters=filters, cache_dir=cache_dir, preset=preset,
                                   progress=progress, callbacks=callbacks, on_layer=site.add, **vars(run),
                                   **overrides)
    if not any(len(a.filters) for a in result.layers.values()):
        raise KeyboardInterrupt("Interrupted before any filter was finished.")
    cache_dir = None if cache_dir is None else os.fspath(cache_dir)
    settings = dict(preset=preset, **vars(dataclasses.replace(run, distribute=None)), **overrides)
    try:
        _add_views(site, result, wanted, examples, image, cache_dir=cache_dir, progress=progress, settings=settings,
                   class_index=class_index, view_settings=view_settings)
    except KeyboardInterrupt:  # what was cached stays cached; the pages show what is done
        result.interrupted = True
    site.write_all()
    return index, result


def _add_views(site: _Site, result, wanted, examples, image, *, cache_dir: str | None, progress: bool,
               settings: dict, class_index: int | None = None, view_settings: dict | None = None) -> None:
    """The extra views, layer by layer, each view with its own progress bar; the layer's pages are rewritten
    after each. `settings`: the atlases' preset, run options (to run here) and `Preset` overrides, which the
    computed views share; `view_settings`: view -> the keywords of its function."""
    view_settings = view_settings or {}
    done = [a for a in result.layers.values() if len(a.filters)]
    units = sum(len(a.filters) for a in done)
    for view in (v for v in wanted if v in pictures.PICTURE_VIEWS):
        with FilterBar(units, progress, desc=pictures.COSTS[view]) as bar:
            for a in done:
                if view == "alpha" and site.alphas(a):  # the atlas's own pictures have their maps
                    bar.advance(len(a.filters))
                    continue
                bar.describe(a.layer)
                found = pictures.PICTURE_VIEWS[view](site.network, a.layer, a.filters, bar=bar, cache_dir=cache_dir,
                                                     **{**settings, **view_settings.get(view, {})})
                setattr(site.views.setdefault(a.layer, LayerViews()), view, found)
                site.write_layer(a.layer)
    if examples is None and image is None:
        return
    from kerasviz.atlas import views as views_lib

    for a in done:
        v = site.views.setdefault(a.layer, LayerViews())
        if examples is not None:
            v.examples = views_lib.unit_examples(site.network, a.layer, [int(f) for f in a.filters], examples,
                                                 cache_dir=cache_dir, top_k=EXAMPLES_TOP_K,
                                                 progress=progress)
        if image is not None:
            v.heatmaps = views_lib.unit_heatmaps(site.network, a.layer, [int(f) for f in a.filters], image)
            v.image_name = os.path.basename(image) if isinstance(image, (str, os.PathLike)) else "your image"
        site.write_layer(a.layer)
    if "accentuated" in wanted:  # faccent's recipe (its own preset), with the gallery's run options and overrides
        accent = {**{k: v for k, v in settings.items() if k != "preset"}, **view_settings.get("accentuated", {})}
        with FilterBar(units, progress, desc=pictures.COSTS["accentuated"]) as bar:
            for a in done:
                bar.describe(a.layer)
                v = site.views[a.layer]
                v.accentuated = views_lib.unit_accentuations(site.network, a.layer, v.examples, cache_dir=cache_dir,
                                                             bar=bar, **accent)
                site.write_layer(a.layer)
    for view in (v for v in wanted if v in layer_views.LAYER_VIEWS):
        with FilterBar(len(done), progress, desc=pictures.COSTS[view]) as bar:
            for a in done:
                bar.describe(a.layer)
                extra = {"class_index": class_index} if view == "concepts" and class_index is not None else {}
                extra.update(view_settings.get(view, {}))
                site.views.setdefault(a.layer, LayerViews()).pages[view] = layer_views.compute(
                    view, site.network, a.layer, examples, cache_dir=cache_dir, **settings, **extra)
                bar.advance(1)
                site.write_layer(a.layer)
