"""Name lookup shared by models, layers, presets and CLI choices: forgiving matches, helpful errors."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable

MAX_SUGGESTIONS = 3


def normalize(name: str) -> str:
    """Lower-case `name` and drop everything but letters and digits (`"ResNet50_V2"` -> `"resnet50v2"`)."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def suggestions(name: str, choices: Iterable[str], n: int = MAX_SUGGESTIONS) -> list[str]:
    """Up to `n` entries of `choices` that look like `name`, best first."""
    choices = list(choices)
    by_norm: dict[str, str] = {}
    for choice in choices:
        by_norm.setdefault(normalize(choice), choice)
    close = difflib.get_close_matches(normalize(name), list(by_norm), n=n, cutoff=0.6)
    found = [by_norm[c] for c in close]
    if len(found) < n:  # substring matches help for long names ("block3" -> "block3_conv1")
        key = normalize(name)
        for choice in choices:
            if key and key in normalize(choice) and choice not in found:
                found.append(choice)
            if len(found) == n:
                break
    return found


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A sentence suggesting close matches, or an empty string when nothing is close."""
    close = suggestions(name, choices)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def lookup(name: str, choices: Iterable[str], what: str, where: str = "") -> str:
    """Return the entry of `choices` that `name` denotes, insensitive to case and punctuation.

    Args:
        name: what the user wrote.
        choices: the valid names.
        what: what is looked up, for the error ("model", "layer", "preset").
        where: optional context for the error (" in VGG16").

    Returns:
        The matching entry of `choices`.

    Raises:
        ValueError: no entry matches; the message suggests up to three close names.
    """
    choices = list(choices)
    if name in choices:
        return name
    matches = [c for c in choices if normalize(c) == normalize(name)]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(f"Unknown {what} {name!r}{where}.{did_you_mean(name, choices)}")


def filter_names(names: Iterable[str], pattern: str | None) -> list[str]:
    """Names matching a shell-style `pattern` (case-insensitive), all when `pattern` is None."""
    names = list(names)
    if pattern is None:
        return names
    return [n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())]
