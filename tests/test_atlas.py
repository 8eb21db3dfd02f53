import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from kerasviz import atlas, nets
from kerasviz.engine import presets
from kerasviz.engine.progress import Callback

QUICK = dict(preset="fast", size=16, steps=2, progress=False)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")


def stored(cache_path):
    """Filter index -> (png bytes, json bytes, png mtime) for every completed filter in a cache folder."""
    out = {}
    for name in os.listdir(cache_path):
        if name.endswith(".json") and name != "settings.json" and not name.startswith("."):
            f = int(name[:-5])
            png = os.path.join(cache_path, f"{f:05d}.png")
            with open(png, "rb") as p, open(os.path.join(cache_path, name), "rb") as j:
                out[f] = (p.read(), j.read(), os.stat(png).st_mtime_ns)
    return out


def assert_cache_intact(cache_path, filters):
    entries = stored(cache_path)
    assert sorted(entries) == sorted(filters)
    for f, (png, meta, _) in entries.items():
        record = json.loads(meta)
        assert record["filter"] == f and record["png"] == hashlib.blake2b(png).hexdigest()
        with Image.open(os.path.join(cache_path, f"{f:05d}.png")) as img:
            img.load()
            assert img.size == (16, 16)
    names = os.listdir(cache_path)
    assert len([n for n in names if n.endswith(".png")]) == len(filters)


def test_layer_atlas_caches_every_filter_and_reuses_it(tiny_cnn, tmp_path):
    first = atlas.layer_atlas(tiny_cnn, "conv2", cache_dir=tmp_path, batch_size=5, **QUICK)
    assert first.filters == list(range(16)) and first.computed == list(range(16)) and first.cached == []
    assert first.images.shape == (16, 16, 16, 3) and first.images.dtype == np.uint8
    assert first.scores.shape == (16,) and not first.interrupted
    assert first.atlas.shape == (4 * 16 + 3 * 5, 4 * 16 + 3 * 5, 3)
    assert first.layer_type == "Conv2D" and first.channels == 16
    assert_cache_intact(first.cache_path, range(16))
    with open(os.path.join(first.cache_path, "settings.json")) as f:
        assert json.load(f)["settings"]["steps"] == 2
    # batch size is not part of the key: a different one reads everything back, bit for bit
    again = atlas.layer_atlas(tiny_cnn, "conv2", [3, 1, 3], cache_dir=tmp_path, batch_size=3, **QUICK)
    assert again.filters == [3, 1] and again.cached == [3, 1] and again.computed == []
    np.testing.assert_array_equal(again.images, first.images[[3, 1]])
    np.testing.assert_allclose(again.scores, first.scores[[3, 1]], rtol=1e-6)


def test_changed_settings_invalidate_only_what_they_affect(tiny_cnn, tmp_path):
    base = atlas.model_atlas(tiny_cnn, cache_dir=tmp_path, filters=range(4), batch_size=4, **QUICK)
    assert list(base.layers) == ["conv1", "conv2"] == nets.conv_layers(tiny_cnn)
    assert all(len(a.computed) == 4 for a in base.layers.values())
    # new weights in conv2 change conv2's pictures, not conv1's (it does not read conv2)
    conv2 = tiny_cnn.get_layer("conv2")
    kernel, bias = conv2.get_weights()
    try:
        conv2.set_weights([kernel * 1.5, bias])
        tuned = atlas.model_atlas(tiny_cnn, cache_dir=tmp_path, filters=range(4), batch_size=4, **QUICK)
    finally:
        conv2.set_weights([kernel, bias])
    assert tuned["conv1"].cached == [0, 1, 2, 3] and tuned["conv1"].computed == []
    assert tuned["conv2"].computed == [0, 1, 2, 3]
    assert not np.array_equal(tuned["conv2"].images, base["conv2"].images)
    assert "conv1" in tuned.summary() and "cached" in tuned.summary()
    # a setting that changes every picture: nothing is reused
    reseeded = atlas.model_atlas(tiny_cnn, ["conv1"], cache_dir=tmp_path, filters=range(4), batch_size=4,
                                 seed=1, **QUICK)
    assert reseeded["conv1"].computed == [0, 1, 2, 3]
    assert reseeded["conv1"].cache_path != base["conv1"].cache_path


def test_every_precision_has_its_own_cache_key(tiny_cnn):
    net = nets.as_network(tiny_cnn)
    fp32 = atlas.cache_settings(net, "conv1", presets.resolve_settings("fast", {"precision": "float32"}), seed=0)
    bf16 = atlas.cache_settings(net, "conv1", presets.resolve_settings("fast", {"precision": "bfloat16"}), seed=0)
    assert fp32["settings"]["precision"] == "float32"
    assert bf16["settings"]["precision"] == "bfloat16"
    assert atlas.cache_key(fp32) != atlas.cache_key(bf16)


class StopAt(Callback):
    """Raises KeyboardInterrupt (what Ctrl-C does) at a step of the n-th batch."""

    def __init__(self, batch):
        self.batch, self.seen = batch, 0

    def on_begin(self, items, steps):
        self.seen += 1

    def on_step(self, record):
        if self.seen == self.batch:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_finished_batches_and_resumes(tiny_cnn, tmp_path):
    with pytest.warns(UserWarning, match="Interrupted: 4 of 8 filters of conv2 are done and cached"):
        part = atlas.layer_atlas(tiny_cnn, "conv2", range(8), cache_dir=tmp_path, batch_size=4,
                                 callbacks=[StopAt(batch=2)], **QUICK)
    assert part.interrupted and part.filters == [0, 1, 2, 3] and part.computed == [0, 1, 2, 3]
    assert_cache_intact(part.cache_path, [0, 1, 2, 3])
    rest = atlas.layer_atlas(tiny_cnn, "conv2", range(8), cache_dir=tmp_path, batch_size=4, **QUICK)
    assert not rest.interrupted and rest.cached == [0, 1, 2, 3] and rest.computed == [4, 5, 6, 7]


def test_corrupt_or_partial_files_are_recomputed(tiny_cnn, tmp_path):
    done = atlas.layer_atlas(tiny_cnn, "conv2", range(8), cache_dir=tmp_path, batch_size=4, **QUICK)
    with open(os.path.join(done.cache_path, "00002.png"), "r+b") as f:
        f.truncate(20)  # a torn picture
    os.remove(os.path.join(done.cache_path, "00005.json"))  # a picture whose record never landed
    stale = os.path.join(done.cache_path, ".tmp-999999999-1-00006.png")  # left by a dead process
    with open(stale, "wb") as f:
        f.write(b"partial")
    again = atlas.layer_atlas(tiny_cnn, "conv2", range(8), cache_dir=tmp_path, batch_size=4, **QUICK)
    assert again.computed == [2, 5] and len(again.cached) == 6
    np.testing.assert_array_equal(again.images, done.images)
    assert not os.path.exists(stale)
    assert_cache_intact(done.cache_path, range(8))


def test_bad_arguments_name_what_was_expected(tiny_cnn, tmp_path):
    with pytest.raises(TypeError, match="Unknown setting.*'stpes'"):
        atlas.layer_atlas(tiny_cnn, "conv1", cache_dir=tmp_path, stpes=3, **QUICK)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1 or None. Received: batch_size=0"):
        atlas.layer_atlas(tiny_cnn, "conv1", cache_dir=tmp_path, batch_size=0, **QUICK)
    with pytest.raises(ValueError, match="Filter 8 is out of range"):
        atlas.layer_atlas(tiny_cnn, "conv1", [8], cache_dir=tmp_path, **QUICK)
    with pytest.raises(TypeError, match="distribute must be None, a tf.distribute.Strategy"):
        atlas.layer_atlas(tiny_cnn, "conv1", cache_dir=tmp_path, distribute="gpu", **QUICK)
    with pytest.raises(ValueError, match="Did you mean"):
        atlas.model_atlas(tiny_cnn, ["conv3"], cache_dir=tmp_path, **QUICK)
    with pytest.raises(TypeError, match=r"filters must be 'all' or a list/range .* Received: 16"):
        atlas.model_atlas(tiny_cnn, cache_dir=tmp_path, filters=16, **QUICK)


CHILD = textwrap.dedent("""
    import os, sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    from conftest import make_tiny_cnn
    import kerasviz as kv
    from kerasviz import atlas
    from kerasviz.engine.progress import Callback

    class Slow(Callback):
        def on_step(self, record):
            time.sleep(0.15)

    model = make_tiny_cnn()
    deadline = time.monotonic() + 600
    while not os.path.exists({go!r}) and time.monotonic() < deadline:  # imports done: wait for the test
        time.sleep(0.02)
    atlas.layer_atlas(model, "conv2", cache_dir={cache!r}, batch_size=2, callbacks=[Slow()],
                      preset="fast", size=16, steps=2, progress=False)
    print("finished")
""")

DISTRIBUTED = textwrap.dedent("""
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from conftest import make_tiny_cnn
    import kerasviz as kv
    from kerasviz import atlas

    model = make_tiny_cnn()
    kw = dict(preset="fast", size=16, steps=2, progress=False, batch_size=4)
    one = atlas.layer_atlas(model, "conv2", cache_dir={cache!r} + "/one", **kw)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    # a Strategy: each batch (4 filters per replica) is split across the replicas by strategy.run
    two = atlas.layer_atlas(model, "conv2", cache_dir={cache!r} + "/two", distribute=strategy, **kw)
    assert [len(f) for _, f, _ in two.chunks] == [8, 8], two.chunks
    assert all(d.endswith("CPU:1") and "CPU:0," in d for d, _, _ in two.chunks), two.chunks
    devices = sorted({{d[-5:].upper() for r, _, _ in two.chunks for d in r.split(",")}})
    assert devices == ["CPU:0", "CPU:1"], two.chunks
    assert two.filters == one.filters == list(range(16)), two.filters
    np.testing.assert_array_equal(two.images, one.images)
    np.testing.assert_array_equal(two.scores, one.scores)
    # visualize_filters itself, 5 filters over 2 replicas (padded), with octaves and revive steps
    vkw = dict(preset="quality", size=24, steps=3, octaves=2, revive_steps=2, progress=False)
    alone = kv.visualize_filters(model, "conv2", range(5), **vkw)
    split = kv.visualize_filters(model, "conv2", range(5), distribute=strategy, **vkw)
    assert split.filters == alone.filters and split.history.shape == alone.history.shape
    np.testing.assert_allclose(split.raw, alone.raw, atol=1e-4)  # float rounding (3e-7 seen), not drift
    np.testing.assert_allclose(split.scores, alone.scores, rtol=1e-4, atol=1e-5)
    print("identical on", devices)
""")


def run_child(code):
    environ = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-c", code], env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module", autouse=True)
def children(request, tmp_path_factory):
    """Start the subprocess tests' children first (those selected), so that their TensorFlow start-up
    overlaps the other tests."""
    base = tmp_path_factory.mktemp("children")
    paths = dict(root=ROOT, tests=TESTS)
    selected = {item.name for item in request.session.items}
    started = {}
    if "test_resumes_after_the_process_is_killed" in selected:
        started["killed"] = run_child(CHILD.format(cache=str(base / "cache"), go=str(base / "go"), **paths))
    if "test_distribute_over_two_devices_gives_the_same_pictures" in selected:
        started["distributed"] = run_child(DISTRIBUTED.format(cache=str(base / "distributed"), **paths))
    yield base, started
    for child in started.values():
        if child.poll() is None:
            child.kill()
        child.communicate()


def layer_folders(cache):
    return [r for r, _, files in os.walk(cache) if "settings.json" in files]


def test_resumes_after_the_process_is_killed(children, tiny_cnn, tmp_path):
    base, started = children
    child, cache = started["killed"], str(base / "cache")
    (base / "go").touch()
    deadline = time.monotonic() + 120
    folder = None
    try:
        while time.monotonic() < deadline and child.poll() is None:
            folders = layer_folders(cache)
            if folders and len(stored(folders[0])) >= 4:
                folder = folders[0]
                break
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
    assert folder is not None, f"the child never stored a filter: {err[-2000:]}"
    before = stored(folder)
    assert 4 <= len(before) < 16, "the kill should land mid-layer"

    resumed = atlas.layer_atlas(tiny_cnn, "conv2", cache_dir=cache, batch_size=2, **QUICK)
    assert resumed.cache_path == folder
    assert sorted(resumed.cached) == sorted(before)
    assert sorted(resumed.computed) == sorted(set(range(16)) - set(before))
    after = stored(folder)
    for f, entry in before.items():  # finished filters were not recomputed nor rewritten
        assert after[f] == entry
    assert_cache_intact(folder, range(16))
    assert not [n for n in os.listdir(folder) if n.startswith(".tmp-")]
    fresh = atlas.layer_atlas(tiny_cnn, "conv2", cache_dir=tmp_path / "fresh", batch_size=4, **QUICK)
    np.testing.assert_array_equal(resumed.images, fresh.images)


def test_distribute_over_two_devices_gives_the_same_pictures(children):
    _, started = children
    child = started["distributed"]
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-3000:]
    assert "identical on ['CPU:0', 'CPU:1']" in out


def test_ctrl_c_as_a_batch_is_stored_keeps_what_the_cache_holds(tiny_cnn, tmp_path, monkeypatch):
    from kerasviz.atlas.cache import FilterCache

    store = FilterCache.store_result

    def store_then_stop(self, result, seconds):
        store(self, result, seconds)
        raise KeyboardInterrupt  # Ctrl-C lands just after the batch was written

    monkeypatch.setattr(FilterCache, "store_result", store_then_stop)
    with pytest.warns(UserWarning, match="Interrupted: 4 of 8 filters of conv2 are done and cached"):
        part = atlas.layer_atlas(tiny_cnn, "conv2", range(8), cache_dir=tmp_path, batch_size=4, **QUICK)
    assert part.filters == [0, 1, 2, 3] and part.computed == [0, 1, 2, 3] and len(part.images) == 4
