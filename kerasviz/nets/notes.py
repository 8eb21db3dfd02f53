"""The one-line notes a run prints once about the network: the input range read from its layers, and the inputs
held at zeros."""

from __future__ import annotations

from kerasviz.nets.extractors import get_extractor
from kerasviz.nets.inputs import held_at_zeros
from kerasviz.nets.network import Network, Preprocessing


def notes_for(network: Network, layers, pre_activation: bool, note: str | None = None) -> str | None:
    """The notes for a run that reads `layers` of `network`, one per line, followed by `note`; None when none.

    Args:
        network: the `Network`.
        layers: the layers the objective reads.
        pre_activation: as for `feature_extractor`.
        note: another note to add (what was adapted to a fixed input size), or None.

    Returns:
        A str of one or more lines, or None.
    """
    lines = []
    if isinstance(network.preprocess, Preprocessing) and network.preprocess.source:
        lines.append(f"input range read from {network.name}: {network.preprocess.source}; pass input_range= or "
                     "preprocess= to set another.")
    if len(network.model.inputs) > 1:
        extractor = get_extractor(network, list(layers), pre_activation)
        zeros = held_at_zeros(network.model, extractor, network.image_input, network.other_inputs)
        if zeros:
            lines.append(zeros)
    if note:
        lines.append(note)
    return "\n".join(lines) or None
