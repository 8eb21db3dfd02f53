"""What a unit reads and what reads it, for the explorer's unit pages: the weights between layers, and what a link
means where a path has none (pooling, activations, adds, concatenations).

Incoming: the input channels whose kernel slices are strongest (`kerasviz.weights.top_inputs`), each resolved to
a unit of a layer that has pictures (through an `Add`: every input's same channel; through a `Concatenate`: the
input that holds it). Outgoing: the units of the next layers with weights that read this unit most (the L2 norm
of their kernel slice for it), looking through layers that keep channels apart.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kerasviz import nets

MERGE_SUM = ("Add", "Average", "Maximum", "Minimum", "Multiply", "Subtract")  # channel c from channel c of each input
MAX_HOPS = 6  # layers without weights looked through, at most, on an outgoing path


@dataclasses.dataclass
class Link:
    """One unit linked to the unit of a page.

    Attributes:
        layer: the linked unit's layer (path).
        unit: its channel.
        norm: the L2 norm of the kernel slice between them; None where the path has no weights.
        kernel: float32 `(kh, kw)` kernel slice (`(1, 1)` for a dense layer); None without weights.
        note: what the link means, a sentence; "" for a plain kernel link.
    """

    layer: str
    unit: int
    norm: float | None = None
    kernel: np.ndarray | None = None
    note: str = ""


def _kernel(layer) -> np.ndarray | None:
    """A Conv2D's `(kh, kw, C_in, C_out)` kernel or a Dense's as `(1, 1, C_in, C_out)`; None for other layers."""
    name = type(layer).__name__
    if name not in ("Conv2D", "Dense") or int(getattr(layer, "groups", 1) or 1) != 1 or not hasattr(layer, "kernel"):
        return None
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), "float32")
    return kernel.reshape(1, 1, *kernel.shape) if kernel.ndim == 2 else kernel if kernel.ndim == 4 else None


def _keeps_channels(layer) -> bool:
    """A one-input layer without weights whose channel c comes from its input's channel c (pooling, activation,
    normalization, dropout, padding)."""
    parents = nets.parent_layers(layer)
    return (len(parents) == 1 and not hasattr(layer, "kernel") and not hasattr(layer, "depthwise_kernel")
            and not isinstance(layer, keras.Model) and nets.output_channels(layer) is not None
            and nets.output_channels(layer) == nets.output_channels(parents[0]))


def _describe(layer) -> str:
    return f"{layer.name} ({type(layer).__name__})"


class Graph:
    """The layers of a network with their parents and children, for links between units.

    Args:
        network: a `Network`.
        shown: layer path -> the units that have pages.
    """

    def __init__(self, network: nets.Network, shown: dict):
        self.network, self.shown = network, shown
        self.layers = {path: layer for path, layer in nets.iter_layers(network.model)}
        self.path_of = {id(layer): path for path, layer in self.layers.items()}
        self._kernels: dict[int, np.ndarray | None] = {}  # read once per layer, not once per unit page
        self.children: dict[int, list] = {}
        for layer in self.layers.values():
            for parent in nets.parent_layers(layer):
                self.children.setdefault(id(parent), []).append(layer)

    def kernel(self, layer) -> np.ndarray | None:
        if id(layer) not in self._kernels:
            self._kernels[id(layer)] = _kernel(layer)
        return self._kernels[id(layer)]

    def _path(self, layer) -> str | None:
        return self.path_of.get(id(layer))

    def _has_page(self, layer, unit: int) -> bool:
        return unit in self.shown.get(self._path(layer), ())

    def back(self, layer, unit: int, via: tuple = ()) -> list[Link]:
        """The units with pages that channel `unit` of `layer` is, looking back through layers without weights."""
        if self._has_page(layer, unit):
            note = ""
            if via:
                note = f"via {', '.join(_describe(v) for v in via)}: no weights, channel {unit} passes unchanged"
            return [Link(self._path(layer), unit, note=note)]
        parents = nets.parent_layers(layer)
        kind = type(layer).__name__
        if _keeps_channels(layer):
            return self.back(parents[0], unit, (layer, *via))
        if kind in MERGE_SUM and parents:
            out = []
            for p in parents:
                for link in self.back(p, unit):
                    link.note = (f"{_describe(layer)} has no weights: its channel {unit} combines channel {unit} of "
                                 f"each of its {len(parents)} inputs")
                    out.append(link)
            return out
        if kind == "Concatenate" and parents:
            offset = 0
            for p in parents:
                n = nets.output_channels(p) or 0
                if offset <= unit < offset + n:
                    links = self.back(p, unit - offset)
                    for link in links:
                        link.note = (f"{_describe(layer)} has no weights: its channel {unit} is channel "
                                     f"{unit - offset} of {p.name}")
                    return links
                offset += n
        return []

    def incoming(self, path: str, unit: int, k: int) -> tuple[list[Link], str]:
        """The strongest incoming units of a unit, and a sentence on where they come from."""
        layer = self.layers[path]
        kernel = self.kernel(layer)
        parents = nets.parent_layers(layer)
        if kernel is None or len(parents) != 1:
            links = [link for p in parents for link in self.back(p, unit)] if (
                _keeps_channels(layer) or type(layer).__name__ in MERGE_SUM) else []
            what = (f"{_describe(layer)} has no weights: unit {unit} is channel {unit} of its input"
                    f"{'s' if len(parents) > 1 else ''}" if links else "")
            return links, what
        slices = np.moveaxis(kernel[..., unit], -1, 0)  # (C_in, kh, kw)
        norms = np.sqrt(np.sum(slices.astype("float64") ** 2, axis=(1, 2)))
        source = parents[0]
        while _keeps_channels(source):
            source = nets.parent_layers(source)[0]
        image = type(source).__name__ == "InputLayer"
        links = []
        for c in np.argsort(-norms, kind="stable"):
            c = int(c)
            found = [] if image else self.back(parents[0], c)
            if not found:  # the image's colours, or a layer without pages: named, not linked
                colour = ("red", "green", "blue")[c] if image and c < 3 else None
                found = [Link(self._path(source) or source.name, c,
                              note=f"the image's {colour} channel" if colour else "")]
            for link in found:
                links.append(dataclasses.replace(link, norm=float(norms[c]), kernel=slices[c]))
            if len(links) >= k:
                break
        what = ("ranked by the L2 norm of the kernel slice for each input channel"
                + (", from the image's colours" if image else ""))
        return links[:k], what

    def forward(self, layer, unit: int, via: tuple = ()) -> list[tuple]:
        """`(consumer, channel, via)`: the layers with weights (or with pages) that read channel `unit`."""
        out = []
        for child in self.children.get(id(layer), []):
            kind = type(child).__name__
            if self.kernel(child) is not None or (via and self._has_page(child, unit)):
                out.append((child, unit, via))
            elif len(via) < MAX_HOPS and _keeps_channels(child):
                out.extend(self.forward(child, unit, (*via, child)))
            elif len(via) < MAX_HOPS and kind in MERGE_SUM:
                if self._has_page(child, unit):
                    out.append((child, unit, via))
                out.extend(self.forward(child, unit, (*via, child)))
            elif len(via) < MAX_HOPS and kind == "Concatenate":
                offset = 0
                for p in nets.parent_layers(child):
                    if p is (via[-1] if via else layer):
                        out.extend(self.forward(child, unit + offset, (*via, child)))
                        break
                    offset += nets.output_channels(p) or 0
        return out

    def outgoing(self, path: str, unit: int, k: int) -> list[Link]:
        """The units of the next layers that read this unit most (by their kernel slice's norm)."""
        links = []
        for consumer, channel, via in self.forward(self.layers[path], unit):
            note = ""
            if via:
                note = (f"via {', '.join(_describe(v) for v in via)}: no weights, the channel passes unchanged"
                        + (f" (as channel {channel})" if channel != unit else ""))
            kernel = self.kernel(consumer)
            target = self._path(consumer)
            if kernel is None:  # a merge layer with pages of its own
                links.append(Link(target, channel, note=note or f"{_describe(consumer)} has no weights: "
                                                               f"channel {unit} goes into its channel {unit}"))
                continue
            slices = kernel[:, :, channel, :]  # (kh, kw, C_out)
            norms = np.sqrt(np.sum(slices.astype("float64") ** 2, axis=(0, 1)))
            for u in np.argsort(-norms, kind="stable")[:k]:
                links.append(Link(target, int(u), float(norms[u]), slices[..., u], note))
        links.sort(key=lambda link: -(link.norm or 0.0))
        return links[:k]
