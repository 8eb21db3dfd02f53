"""Progress reporting as callbacks: `on_begin`, `on_step`, `on_end`; a context manager makes sure
`on_end` runs, even when the run is interrupted."""

from __future__ import annotations

import contextlib
import dataclasses
import threading


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """What a callback hears after each step.

    Attributes:
        step: steps done in the current chunk (all octaves counted).
        steps: steps per chunk.
        chunk: index of the current chunk (batch of images).
        chunks: number of chunks.
        items_done: images finished so far.
        items: images in the run.
        reviving: images of the current chunk in their revive steps (`Preset.revive_steps`), 0 outside
            them; `step == steps` meanwhile.
        revive_step: revive steps done.
        revive_steps: revive steps of the chunk.
    """

    step: int
    steps: int
    chunk: int
    chunks: int
    items_done: int
    items: int
    reviving: int = 0
    revive_step: int = 0
    revive_steps: int = 0


class Callback:
    """Base class: override what you need."""

    def on_begin(self, items: int, steps: int) -> None:
        pass

    def on_step(self, record: StepRecord) -> None:
        pass

    def on_end(self) -> None:
        pass


class ProgressBar(Callback):
    """A tqdm bar over all steps of all chunks (a widget in Jupyter, one line in a terminal).

    The revive steps of a chunk extend the bar when they start, so it never sits at 100% while they run.
    """

    def on_begin(self, items, steps):
        from tqdm.auto import tqdm

        self._bar = None
        self._make = tqdm
        self._last = 0
        self._extra = {}  # chunk -> revive steps added to the bar for it

    def on_step(self, record):
        if self._bar is None:
            self._bar = self._make(total=record.steps * record.chunks, unit="step", leave=False,
                                   desc="kerasviz")
        if record.revive_steps and record.chunk not in self._extra:
            self._extra[record.chunk] = record.revive_steps
            self._bar.total += record.revive_steps
        before = sum(n for c, n in self._extra.items() if c < record.chunk)
        position = record.chunk * record.steps + before + min(record.step, record.steps) + record.revive_step
        self._bar.update(max(0, position - self._last))
        self._last = max(position, self._last)
        self._bar.set_postfix_str(self.describe(record), refresh=bool(record.reviving))

    @staticmethod
    def describe(record: StepRecord) -> str:
        """The text beside the bar: the batch and the filters finished, then the revive steps if running."""
        if record.chunks > 1:
            text = f"batch {record.chunk + 1}/{record.chunks}, {record.items_done}/{record.items} images done"
        else:
            text = f"{record.items} images in one batch"
        if record.reviving:
            text += f", reviving {record.reviving} ({record.revive_step}/{record.revive_steps})"
        return text

    def on_end(self):
        if getattr(self, "_bar", None) is not None:
            self._bar.close()


@contextlib.contextmanager
def run_callbacks(callbacks, *, n_items: int, steps: int):
    """Call `on_begin` now, yield a function that forwards `StepRecord`s, call `on_end` at exit.

    Args:
        callbacks: a sequence of `Callback`.
        n_items: the number of images in the run (passed to `on_begin`).
        steps: steps per chunk (passed to `on_begin`).

    Returns:
        A context manager; `with` gives the function that sends one `StepRecord` to every callback.

    Example:
    >>> with kv.progress.run_callbacks([kv.progress.Callback()], n_items=4, steps=10) as notify:
    ...     _ = notify(kv.progress.StepRecord(step=1, steps=10, chunk=0, chunks=1, items_done=0, items=4))
    """
    for cb in callbacks:
        cb.on_begin(n_items, steps)
    try:
        yield lambda record: [cb.on_step(record) for cb in callbacks]
    finally:
        for cb in callbacks:
            cb.on_end()


MAIN_SHARE = 0.9  # of a chunk on the bar after its main steps; its revive steps or its end bring the rest


class _ChunkSteps(Callback):
    """Forwards a chunk's step progress to a `FilterBar`, in filters: its main steps move the bar to
    `MAIN_SHARE` of the chunk, its revive steps (if any) or its end the rest, so the bar never sits full while
    revive steps run."""

    def __init__(self, bar: FilterBar, size: int):
        self.bar, self.size, self._last = bar, size, 0.0

    def on_step(self, record):
        share = MAIN_SHARE * min(record.step, record.steps) / max(record.steps, 1)
        if record.revive_steps:
            share = MAIN_SHARE + (1 - MAIN_SHARE) * record.revive_step / record.revive_steps
        self._move(self.size * share)

    def on_end(self):
        self._move(self.size)

    def _move(self, done: float):
        if done > self._last:
            self.bar.advance(done - self._last)
            self._last = done


class FilterBar:
    """A thread-safe tqdm bar counted in filters (fractions while a chunk runs), with an ETA: the bar of
    atlases, whose chunks may run on several devices at once. A context manager that closes the bar.

    Args:
        total: filters to compute.
        enabled: False shows nothing.
        desc: the bar's label. Defaults to `"kerasviz atlas"`.
    """

    def __init__(self, total: int, enabled: bool, desc: str = "kerasviz atlas"):
        self._lock = threading.Lock()
        self._bar = None
        if enabled and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="filter", desc=desc, leave=True,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total} filters "
                                        "[{elapsed}<{remaining}, {rate_fmt}] {postfix}")

    def __enter__(self) -> FilterBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def steps_of(self, size: int) -> Callback:
        """A `Callback` that moves the bar by `size` filters over one chunk's steps."""
        return _ChunkSteps(self, size)

    def advance(self, amount: float) -> None:
        """Move the bar by `amount` filters."""
        if self._bar is not None and amount:
            with self._lock:  # never past the total: tqdm would warn and show a negative ETA
                amount = min(amount, self._bar.total - self._bar.n)
                if amount > 0:
                    self._bar.update(amount)

    def describe(self, text: str) -> None:
        """Show `text` (the layer) beside the bar."""
        if self._bar is not None:
            with self._lock:
                self._bar.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
