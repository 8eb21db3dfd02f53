"""A griffe extension for the API reference: Keras-style examples become code blocks.

kerasviz docstrings write their examples the Keras way, unindented after `Example:`:

    Example:
    >>> kv.list_models("vgg*")
    ['VGG16', 'VGG19']

Markdown would read `>>>` as nested quotes. This extension turns every run of `>>>` / `...` lines (and
the output lines that follow them, up to a blank line) into a fenced `pycon` block, and the
`Example:` line before it into a bold label. It also joins an Args entry whose grouped names wrap
onto a second line (`cache_dir, batch_size,` / `preset: as in layer_atlas`), which the Google-style
parser would otherwise reject.
"""

from __future__ import annotations

import re

import griffe

LABELS = ("Example:", "Examples:")
# `cache_dir, batch_size, ...,` wrapped onto the next line before its colon: one grouped Args entry
WRAPPED_NAMES = re.compile(r"^(\s+)([\w*]+, )+$")


def join_wrapped_names(text: str) -> str:
    """Join an Args entry whose comma-separated names wrap onto the next line (`a, b,` / `c: as in f`)."""
    lines = text.splitlines()
    out: list[str] = []
    for line in lines:
        indent = len(line) - len(line.lstrip())
        names = WRAPPED_NAMES.match(out[-1] + " ") if out else None
        if names and out[-1].endswith(",") and ":" in line and indent > len(names[1]):
            out[-1] = out[-1] + " " + line.strip()
        else:
            out.append(line)
    return "\n".join(out)


def fence_examples(text: str) -> str:
    """`text` with each doctest run wrapped in a ```pycon fence."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith(">>>"):
            if lines[i].strip() in LABELS:
                out.append(f"**{lines[i].strip()[:-1]}**")
                out.append("")
            else:
                out.append(lines[i])
            i += 1
            continue
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i])
            i += 1
        if out and out[-1].strip():
            out.append("")
        out.extend(["```pycon", *block, "```", ""])
    return "\n".join(out).rstrip("\n")


class KerasExamples(griffe.Extension):
    """Fence the doctest examples of every docstring and join wrapped grouped parameter names."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None:
            return
        text = join_wrapped_names(obj.docstring.value)
        if ">>>" in text and "```pycon" not in text:
            text = fence_examples(text)
        obj.docstring.value = text
