"""Atlases on a local Ray cluster that this module starts (4 logical CPUs) and stops, leaving no process."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import ray
from PIL import Image

import kerasviz as kv
from kerasviz import atlas
from kerasviz.atlas import cluster
from kerasviz.engine import presets, progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
MODULE_LIMIT_S = 300  # the whole module, start-up of a loaded machine included
KW = dict(preset="fast", size=16, steps=2, progress=False, batch_size=4)
SLOW = dict(preset="fast", size=32, steps=120, progress=False, batch_size=2)  # batches that last a while
TWO = kv.distribute.Ray(workers=2)


def _children(pid: int) -> set[int]:
    """Every living descendant of `pid` (from /proc)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parents[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - out
        out |= frontier
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def address():
    """A local Ray for this module, under a time limit; afterwards every process it started is gone."""
    def expired(*_):
        raise TimeoutError(f"tests/test_cluster.py ran past {MODULE_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(MODULE_LIMIT_S)
    # the workers inherit this environment: they import this checkout and the tests' tiny models
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, TESTS, os.environ.get("PYTHONPATH", "")])
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    context = ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    for key, value in saved.items():  # Ray has started: leave the environment as it was
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield context.address_info["address"]
    finally:
        started = _children(os.getpid())
        cluster.close()
        ray.shutdown()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and [p for p in started | _children(os.getpid()) if _alive(p)]:
            time.sleep(0.2)
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        left = [p for p in started | _children(os.getpid()) if _alive(p)]
        assert not left, f"Ray processes left behind: {left}"


@pytest.fixture(scope="module")
def model():
    from conftest import make_tiny_cnn

    return make_tiny_cnn()


def assert_cache_intact(folder, filters, side):
    """Every filter stored once (one PNG, one record whose hash matches it) and readable."""
    names = os.listdir(folder)
    records = sorted(int(n[:-5]) for n in names if n.endswith(".json") and n != "settings.json")
    assert records == sorted(filters)
    assert sorted(int(n[:-4]) for n in names if n.endswith(".png")) == sorted(filters)
    assert not [n for n in names if n.startswith(".tmp-")]
    for f in filters:
        with open(os.path.join(folder, f"{f:05d}.png"), "rb") as p, open(os.path.join(folder, f"{f:05d}.json")) as j:
            data, record = p.read(), json.load(j)
        assert record["filter"] == f and record["png"] == hashlib.blake2b(data).hexdigest()
        with Image.open(os.path.join(folder, f"{f:05d}.png")) as img:
            img.load()
            assert img.size == (side, side)


def test_a_layer_on_ray_has_the_same_pixels_as_in_one_process(address, model, tmp_path):
    one = atlas.layer_atlas(model, "conv2", cache_dir=tmp_path / "one", **KW)
    url = f"file://{tmp_path}/ray"  # an fsspec URL: the workers write there, the driver reads back
    on_ray = atlas.layer_atlas(model, "conv2", cache_dir=url, distribute=TWO, **KW)
    assert on_ray.filters == one.filters == list(range(16)) and on_ray.computed == list(range(16))
    np.testing.assert_array_equal(on_ray.images, one.images)
    np.testing.assert_array_equal(on_ray.scores, one.scores)
    assert all(worker.startswith("ray:") for worker, _, _ in on_ray.chunks)
    assert sorted(f for _, fs, _ in on_ray.chunks for f in fs) == list(range(16))  # each filter once
    assert on_ray.cache_path.startswith("file://")
    assert_cache_intact(on_ray.cache_path[len("file://"):], range(16), 16)
    assert os.path.basename(on_ray.cache_path) == os.path.basename(one.cache_path)  # the same key
    # the driver reads what exists before it plans: nothing is recomputed
    again = atlas.layer_atlas(model, "conv2", cache_dir=url, distribute=TWO, **KW)
    assert again.cached == list(range(16)) and again.computed == [] and again.chunks == []


def test_maco_on_ray_stores_the_transparency_maps_as_in_one_process(address, model, tmp_path):
    from kerasviz.atlas.cache import FilterCache

    kw = dict(KW, preset="maco", size=24, steps=2, revive_steps=0)
    one = atlas.layer_atlas(model, "conv2", range(4), cache_dir=tmp_path / "one", **kw)
    on_ray = atlas.layer_atlas(model, "conv2", range(4), cache_dir=tmp_path / "ray", distribute=TWO, **kw)
    np.testing.assert_array_equal(on_ray.images, one.images)  # the maco param and its crops travel to the workers
    maps = FilterCache(on_ray.cache_path, {}).load_alphas(range(4))
    assert sorted(maps) == [0, 1, 2, 3] and all(m.shape == on_ray.images.shape[1:3] for m in maps.values())


def test_a_model_atlas_and_a_gallery_run_on_ray(address, model, tmp_path):
    from kerasviz.atlas import gallery

    index, result = gallery.make_gallery(model, tmp_path / "site", distribute=TWO, cache_dir=tmp_path / "cache",
                                         filters=range(4), top_k=2, **KW)
    assert os.path.exists(index) and list(result.layers) == ["conv1", "conv2"]
    assert all(a.computed == [0, 1, 2, 3] for a in result.layers.values())
    assert "conv2" in result.summary() and not result.interrupted
    stats = cluster.pool(TWO).stats()
    assert len(stats) == 2 and all(s["finished"] >= 1 for s in stats)  # both workers, kept between calls


def _running_workers() -> list[int]:
    """Pids of the Ray workers running a batch right now (Ray titles the process by the method it runs)."""
    mine = _children(os.getpid())
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(pid) for pid, args in (line.split(None, 1) for line in out.splitlines() if line.strip())
            if "ray::Worker.run" in args and int(pid) in mine]


def test_a_worker_killed_mid_batch_is_retried_and_the_atlas_is_complete(address, model, tmp_path):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("atlas", atlas.layer_atlas(
        model, "conv2", cache_dir=tmp_path, distribute=TWO, **SLOW)), daemon=True)
    thread.start()
    deadline, killed = time.monotonic() + 120, None
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        running = _running_workers()
        if running:
            killed = running[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    thread.join(180)
    assert killed is not None, "no worker was seen running a batch"
    result = box["atlas"]
    assert result.filters == list(range(16)) and not result.interrupted
    assert sorted(result.computed) == list(range(16))
    assert_cache_intact(result.cache_path, range(16), 32)
    assert killed not in [s["pid"] for s in cluster.pool(TWO).stats()]  # Ray restarted that worker


def test_ctrl_c_in_the_driver_stops_with_what_is_done(address, model, tmp_path, monkeypatch):
    calls = []

    def interrupted(self, amount):
        calls.append(amount)
        raise KeyboardInterrupt  # Ctrl-C as the first batch comes back

    monkeypatch.setattr(progress.FilterBar, "advance", interrupted)
    with pytest.warns(UserWarning, match="Interrupted: 4 of 16 filters of conv2 are done and cached"):
        stopped = atlas.layer_atlas(model, "conv2", cache_dir=tmp_path, distribute=TWO, **KW)
    assert stopped.interrupted and len(stopped.filters) == 4 and calls == [4]
    monkeypatch.undo()
    resumed = atlas.layer_atlas(model, "conv2", cache_dir=tmp_path, distribute=TWO, **KW)
    assert set(resumed.cached) >= set(stopped.filters) and resumed.filters == list(range(16))
    assert not resumed.interrupted
    assert_cache_intact(resumed.cache_path, range(16), 16)


DRIVER = textwrap.dedent("""
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from conftest import make_tiny_cnn
    import kerasviz as kv
    from kerasviz import atlas

    atlas.layer_atlas(make_tiny_cnn(), "conv2", cache_dir={cache!r}, preset="fast", size=32, steps=120,
                      batch_size=2, progress=False, distribute=kv.distribute.Ray(address={address!r}, workers=2))
    print("finished")
""")


def test_a_killed_driver_resumes_from_the_cache(address, model, tmp_path):
    cache = str(tmp_path / "cache")
    code = DRIVER.format(root=ROOT, tests=TESTS, cache=cache, address=address)
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    deadline, folder = time.monotonic() + 150, None
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            folders = [r for r, _, files in os.walk(cache) if "settings.json" in files]
            if folders and len([n for n in os.listdir(folders[0]) if n.endswith(".json")]) >= 1 + 4:
                folder = folders[0]
                break
            time.sleep(0.05)
    finally:
        driver.send_signal(signal.SIGKILL)
        _, err = driver.communicate()
    assert folder is not None, f"the driver never stored 4 filters: {err[-2000:]}"
    time.sleep(1.0)  # its workers end with it (a batch they were finishing may still land)
    before = {int(n[:-5]) for n in os.listdir(folder) if n.endswith(".json") and n != "settings.json"}
    assert 4 <= len(before) < 16, "the kill should land mid-layer"
    resumed = atlas.layer_atlas(model, "conv2", cache_dir=cache, distribute=TWO, **SLOW)
    assert resumed.cache_path == folder and resumed.filters == list(range(16))
    assert set(resumed.cached) >= before
    assert sorted(resumed.cached + resumed.computed) == list(range(16))  # only the rest computed, each once
    assert_cache_intact(folder, range(16), 32)


def test_an_error_in_the_users_input_fails_once_clearly(address, model, tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'conv2'"):  # the driver checks before any batch
        atlas.layer_atlas(model, "conv9", cache_dir=tmp_path, distribute=TWO, **KW)
    # the same mistake inside a worker: raised as the worker raised it, and not retried
    good = atlas.layer_atlas(model, "conv1", [0], cache_dir=tmp_path, **KW)
    workers = cluster.pool(TWO)
    task = cluster.LayerTask(model=cluster.model_spec(kv.nets.as_network(model), ray), layer="conv9",
                             settings=presets.resolve_settings("fast", dict(size=16, steps=2)), seed=0,
                             objective=None, batch_size=4, folder=str(tmp_path / "x"), cache_settings=good.settings,
                             key="0" * 16)
    before = sum(s["started"] for s in workers.stats())
    with pytest.raises(ValueError, match="Layer 'conv9' not found.*Did you mean 'conv2'"):
        cluster.run([(task, [[0, 1]])], TWO, progress.FilterBar(2, False))
    assert sum(s["started"] for s in workers.stats()) == before + 1


def test_the_command_line_runs_a_gallery_on_ray(address, model, tmp_path, capsys):
    from kerasviz import cli

    path = str(tmp_path / "tiny.keras")
    model.save(path)
    common = [path, "--weights", "none", "--preset", "fast", "--size", "16", "--steps", "2", "--filters", "0-1"]
    assert cli.main(["gallery", *common, "--ray-gpus", "1", "--out", str(tmp_path / "x")]) == 2
    assert "--ray-gpus and --ray-cpus need --ray" in capsys.readouterr().err
    cache = str(tmp_path / "cache")
    assert cli.main(["gallery", *common, "--ray", address, "--ray-cpus", "1", "--cache-dir", cache,
                     "--out", str(tmp_path / "site"), "--quiet"]) == 0
    assert "conv2" in capsys.readouterr().out and os.path.exists(tmp_path / "site" / "index.html")
    assert cli.main(["atlas", *common, "conv2", "--ray", "--cache-dir", cache, "--out", str(tmp_path / "a.png")]) == 0
    assert "2 filters of conv2" in capsys.readouterr().out  # read back from the gallery's cache
