"""Filters: which channels of a layer a call means, checked against the layer (the one range check)."""

from __future__ import annotations

import numpy as np

DEFAULT_FILTER_COUNT = 64  # an 8x8 atlas


def resolve_filters(filters, n_channels: int, layer: str, default: int | None = DEFAULT_FILTER_COUNT) -> list[int]:
    """Filter indices from what the user wrote, checked against the layer's channels.

    Args:
        filters: an int, an iterable of ints, `"all"`, or None for the first `default`. An int is one
            filter index: `filters=4` is filter 4 (the result lists `[4]`); `range(4)` gives four.
        n_channels: the layer's channel count.
        layer: the layer name (for the error message).
        default: how many filters None gives, clipped to the layer's channels (a layer with 8 channels
            gives 8); None gives all. Defaults to 64 (the keras.io 8x8 atlas).

    Returns:
        A list of ints.

    Raises:
        ValueError: an empty list, an index the user gave out of range (the message gives the valid
            range), or another string than `"all"`.

    Example:
    >>> kv.nets.resolve_filters(range(3), 64, "block1_conv1")
    [0, 1, 2]
    >>> kv.nets.resolve_filters(4, 64, "block1_conv1")  # one filter: number 4
    [4]
    >>> kv.nets.resolve_filters(None, 8, "conv1")  # the default 64, clipped to 8 channels
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    if filters is None:
        return list(range(n_channels if default is None else min(default, n_channels)))
    if isinstance(filters, str):
        if filters == "all":
            return list(range(n_channels))
        raise ValueError(f"filters must be an int, a list of ints or 'all'. Received: {filters!r}.")
    if isinstance(filters, (int, np.integer)):
        filters = [int(filters)]
    filters = [int(f) for f in filters]
    if not filters:
        raise ValueError("filters is empty: give at least one filter index.")
    for f in filters:
        check_filter(f, n_channels, layer)
    return filters


def check_filter(index, n_channels: int, layer: str) -> int:
    """`index` as an int, checked against a layer's channel count: the one range check of the package.

    Args:
        index: the filter (channel) index the user gave.
        n_channels: the layer's channel count.
        layer: the layer name (for the message).

    Returns:
        `int(index)`.

    Raises:
        TypeError: `index` is not an int.
        ValueError: `index` is not in `0 .. n_channels - 1`.

    Example:
    >>> kv.nets.check_filter(3, 64, "block1_conv1")
    3
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"filter must be an int. Received: filter={index!r} (layer {layer!r}).")
    if not 0 <= index < n_channels:
        raise ValueError(f"Filter {int(index)} is out of range for layer {layer!r}, which has {n_channels} channels "
                         f"(valid: 0-{n_channels - 1}).")
    return int(index)
