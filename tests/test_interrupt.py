"""Ctrl-C keeps the work: a real SIGINT, sent to a process in the middle of an octave, for every preset and entry
point, leaves the filters that ran all their steps (and only those), says how many, and the command line exits
130 with the finished tiles written and the same command resuming from the cache."""

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import make_tiny_cnn

import kerasviz as kv

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
PRESETS = ("quality", "fast", "lucid", "keras-io", "blog2016")
STEPS = 600  # per octave: the run goes on long after the signal is sent
ATLAS_STEPS = {"quality": 400, "fast": 1600}  # about 5 s per batch of 2 on a 2-core CPU

# One process for every preset (one framework start): before each run it waits for a line on stdin; a callback
# prints where it is once the second batch is in the middle of an octave (the quality preset's second); the
# parent then sends SIGINT and reads the result's line.
CHILD = textwrap.dedent(f"""
    import json, sys
    sys.path.insert(0, {TESTS!r})
    from conftest import make_tiny_cnn
    import kerasviz as kv

    net = make_tiny_cnn()

    class Tell(kv.progress.Callback):
        told = False
        def on_step(self, record):
            if record.chunk == 1 and not self.told and record.step > record.steps * 3 // 8:
                self.told = True
                print(json.dumps({{"step": record.step, "steps": record.steps}}), flush=True)

    for preset in sys.argv[1:]:
        sys.stdin.readline()
        r = kv.visualize_filters(net, "conv2", range(4), preset=preset, batch_size=2, size=64, steps={STEPS},
                                 precision="float32", progress=False, callbacks=[Tell()])
        print(json.dumps(dict(preset=preset, filters=r.filters, unfinished=r.unfinished, interrupted=r.interrupted,
                              shape=list(r.images.shape), history=list(r.history.shape))), flush=True)
""")


def _env():
    return {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _interrupt_every_preset():
    """One child process runs every preset and gets a SIGINT in the middle of each run; returns (each preset's
    result line, the child's exit code, its stderr), or None with the stderr if the child ended early."""
    argv = [sys.executable, "-W", "always::UserWarning", "-c", CHILD, *PRESETS]  # every warning, not the first
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env(), cwd=ROOT)
    out = {}
    try:
        for preset in PRESETS:
            child.stdin.write("go\n")
            child.stdin.flush()
            where = child.stdout.readline()
            if where:
                os.kill(child.pid, signal.SIGINT)
            line = child.stdout.readline() if where else ""
            if not line:  # the child ended
                break
            out[preset] = {**json.loads(line), **json.loads(where)}
    finally:
        stderr = child.communicate(timeout=120)[1]
    return (out if len(out) == len(PRESETS) else None), child.returncode, stderr


def test_a_sigint_mid_octave_returns_the_finished_filters_for_every_preset():
    # A SIGINT is delivered wherever the child happens to be; once in a CI run (never in 5 runs since) the child
    # ended instead of printing its result. A second try keeps that rare case from failing CI; if both tries end
    # early, the failure shows the child's stderr.
    out, code, stderr = _interrupt_every_preset()
    if out is None:
        first = stderr
        out, code, stderr = _interrupt_every_preset()
        assert out is not None, f"the child ended early twice (exit {code}):\n{first[-3000:]}\n---\n{stderr[-3000:]}"
    assert code == 0, stderr
    for preset, r in out.items():
        steps = 4 * STEPS if preset == "quality" else STEPS
        assert r["interrupted"] and r["step"] < steps, (preset, r)
        assert r["filters"] == [0, 1] and r["unfinished"] == [2, 3], (preset, r)
        assert r["shape"][0] == 2 and r["history"] == [steps, 2], (preset, r)
    assert stderr.count("Interrupted: 2 of 4 filters finished; returning those") == len(PRESETS)


def _atlas(tmp_path, preset):
    model = tmp_path / "tiny.keras"
    if not model.exists():
        make_tiny_cnn().save(model)
    return [sys.executable, "-m", "kerasviz", "atlas", str(model), "conv2", "--filters", "0-3", "--batch-size", "2",
            "--size", "64", "--steps", str(ATLAS_STEPS[preset]), "--preset", preset, "--precision", "float32",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / f"{preset}.png")]


@pytest.mark.parametrize("preset", ["quality", "fast"])
def test_the_atlas_command_writes_the_finished_tiles_exits_130_and_resumes(tmp_path, preset):
    argv = _atlas(tmp_path, preset)
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    deadline = time.time() + 300
    while len(glob.glob(str(tmp_path / "cache" / "**" / "0000*.json"), recursive=True)) < 2:  # the first batch
        assert child.poll() is None and time.time() < deadline, child.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(child.pid, signal.SIGINT)  # in the second batch, mid-octave
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr
    assert "Interrupted: 2 of 4 filters finished" in stderr and "Traceback" not in stderr
    written = kv.load_image(str(tmp_path / f"{preset}.png"))
    assert written.shape[1] == 2 * 64 + 5 or written.shape[0] == 2 * 64 + 5  # two tiles, not four
    again = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "4 filters of conv2" in again.stdout and "2 from the cache" in again.stdout


@pytest.mark.engine
def test_an_interrupted_run_keeps_no_unfinished_picture(tiny_cnn):
    """The pictures kept are those of a run that was never interrupted (same seed, same pixels)."""

    class StopInSecondBatch(kv.progress.Callback):
        def on_step(self, record):
            if record.chunk == 1 and record.step > 20:
                raise KeyboardInterrupt  # what Ctrl-C does in a step of the second batch's second octave

    kw = dict(batch_size=2, size=32, steps=16, progress=False, precision="float32")
    with pytest.warns(UserWarning, match="Interrupted: 2 of 4 filters finished"):
        part = kv.visualize_filters(tiny_cnn, "conv2", range(4), callbacks=[StopInSecondBatch()], **kw)
    whole = kv.visualize_filters(tiny_cnn, "conv2", range(2), **kw)
    assert part.filters == [0, 1] and part.unfinished == [2, 3]
    np.testing.assert_array_equal(part.images, whole.images)


@pytest.mark.engine
def test_an_interrupt_before_any_filter_finished_goes_on_up(tiny_cnn):
    """Nothing to return: the KeyboardInterrupt goes on (it stops a dream or a training callback as well)."""

    class StopAtOnce(kv.progress.Callback):
        def on_step(self, record):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="Interrupted: 0 of 3 filters finished"):
        kv.visualize_filters(tiny_cnn, "conv2", range(3), preset="fast", size=32, steps=4, progress=False,
                             callbacks=[StopAtOnce()])


@pytest.mark.engine
def test_an_interrupt_in_the_revive_steps_leaves_those_filters_unfinished(tiny_cnn):
    class StopReviving(kv.progress.Callback):
        def on_step(self, record):
            if record.reviving:
                raise KeyboardInterrupt

    kw = dict(preset="fast", size=32, steps=4, progress=False, precision="float32")
    whole = kv.visualize_filters(tiny_cnn, "conv2", range(16), **kw)
    assert whole.revived  # some filters go through the revive steps
    with pytest.warns(UserWarning, match="Interrupted"):
        part = kv.visualize_filters(tiny_cnn, "conv2", range(16), callbacks=[StopReviving()], **kw)
    assert set(part.unfinished) >= set(whole.revived) and not part.revived
    kept = [whole.filters.index(f) for f in part.filters]
    np.testing.assert_array_equal(part.images, whole.images[kept])
