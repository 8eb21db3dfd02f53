"""The progress bars: never past their total, the revive steps counted, a text that moves."""

import warnings

from kerasviz.engine.progress import FilterBar, ProgressBar, StepRecord


def _records(chunks: int, steps: int, revive_steps: int):
    for chunk in range(chunks):
        for step in range(1, steps + 1):
            yield StepRecord(step=step, steps=steps, chunk=chunk, chunks=chunks, items_done=4 * chunk, items=4 * chunks)
        for r in range(1, revive_steps + 1):
            yield StepRecord(step=steps, steps=steps, chunk=chunk, chunks=chunks, items_done=4 * chunk,
                             items=4 * chunks, reviving=2, revive_step=r, revive_steps=revive_steps)
        yield StepRecord(step=steps, steps=steps, chunk=chunk, chunks=chunks, items_done=4 * (chunk + 1),
                         items=4 * chunks)


def test_the_step_bar_counts_the_revive_steps_and_ends_full():
    bar = ProgressBar()
    bar.on_begin(8, 10)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a TqdmWarning (clamping frac) fails the test
        for record in _records(chunks=2, steps=10, revive_steps=5):
            bar.on_step(record)
            seen.append((bar._bar.n, bar._bar.total))
    assert all(n <= total for n, total in seen)
    assert seen[-1] == (30, 30)  # 2 x 10 steps + the 5 revive steps of each chunk
    # while chunk 0 revives, the bar is below its total
    assert seen[11] == (12, 25)  # revive step 2 of 5
    bar.on_end()


def test_the_bar_text_moves_with_the_batches():
    many = StepRecord(step=3, steps=10, chunk=1, chunks=4, items_done=16, items=64)
    assert ProgressBar.describe(many) == "batch 2/4, 16/64 images done"
    one = StepRecord(step=3, steps=10, chunk=0, chunks=1, items_done=0, items=16, reviving=2, revive_step=1,
                     revive_steps=8)
    assert ProgressBar.describe(one) == "16 images in one batch, reviving 2 (1/8)"


def test_the_filter_bar_never_passes_its_total():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with FilterBar(4, True) as bar:
            for _ in range(10):
                bar.advance(0.75)
            assert bar._bar.n == 4


def test_the_filter_bar_is_not_full_while_a_chunk_revives():
    with FilterBar(4, True) as bar:
        chunk = bar.steps_of(4)
        for step in range(1, 11):
            chunk.on_step(StepRecord(step=step, steps=10, chunk=0, chunks=1, items_done=0, items=4))
        assert bar._bar.n < 4  # the main steps are done, the chunk is not
        for r in range(1, 6):
            chunk.on_step(StepRecord(step=10, steps=10, chunk=0, chunks=1, items_done=0, items=4, reviving=1,
                                     revive_step=r, revive_steps=8))
            assert bar._bar.n < 4
        chunk.on_end()
        assert bar._bar.n == 4
