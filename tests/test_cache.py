"""The per-filter cache on local paths, `file://` and fsspec URLs (`memory://`): layout, atomicity, errors."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading

import fsspec
import keras
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from kerasviz import atlas
from kerasviz.atlas import storage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def image(seed, side=6):
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype="uint8")


@pytest.fixture
def memory_url(request):
    """A `memory://` folder of its own (the memory file system is one per process), removed afterwards."""
    root = f"/kv-test-{request.node.name.replace('[', '-').replace(']', '')}"
    fs = MemoryFileSystem()
    if fs.exists(root):
        fs.rm(root, recursive=True)
    yield f"memory://{root}"
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_one_picture_and_one_record_per_filter_and_the_settings(tmp_path):
    cache = atlas.FilterCache(tmp_path, {"model": "m", "layer": "conv1"})  # a PathLike folder
    pictures = [image(seed) for seed in range(3)]
    for f, img, score in zip([0, 3, 7], pictures, [1.25, -0.5, 2.0], strict=True):
        cache.store(f, img, score, 0.125)
    assert sorted(os.listdir(tmp_path)) == ["00000.json", "00000.png", "00003.json", "00003.png", "00007.json",
                                            "00007.png", "settings.json"]
    assert json.loads((tmp_path / "settings.json").read_bytes()) == {"model": "m", "layer": "conv1"}
    record = json.loads((tmp_path / "00003.json").read_bytes())
    assert (record["filter"], record["score"], record["seconds"], record["revived"]) == (3, -0.5, 0.125, False)
    found = cache.load_many(range(10), channels=3)
    assert sorted(found) == [0, 3, 7]
    for f, img in zip([0, 3, 7], pictures, strict=True):
        np.testing.assert_array_equal(found[f][0], img)
    assert cache.load(3, channels=3)[1] == -0.5


def test_memory_url_store_load_and_load_many(memory_url):
    cache = atlas.FilterCache(memory_url + "/tiny/conv1-abc", {"layer": "conv1"})
    assert cache.load(0, 3) is None and cache.load_many(range(4), 3) == {}
    for f in [0, 2, 5]:
        cache.store(f, image(f), score=f / 2, seconds=0.1)
    fs = fsspec.filesystem("memory")
    folder = memory_url[len("memory://"):] + "/tiny/conv1-abc"
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False)) == [
        "00000.json", "00000.png", "00002.json", "00002.png", "00005.json", "00005.png", "settings.json"]
    assert json.loads(fs.cat_file(folder + "/settings.json")) == {"layer": "conv1"}
    img, score = cache.load(2, 3)
    np.testing.assert_array_equal(img, image(2))
    assert score == 1.0
    found = cache.load_many([5, 1, 0, 5], 3)
    assert sorted(found) == [0, 5] and found[5][1] == 2.5
    np.testing.assert_array_equal(found[0][0], image(0))
    assert cache.clean_stale() == 0


def test_load_many_lists_the_folder_once_and_probes_no_entry(memory_url, monkeypatch):
    cache = atlas.FilterCache(memory_url + "/m/l-k", {})
    for f in range(6):
        cache.store(f, image(f), float(f), 0.1)
    calls = []
    for method in ["ls", "exists", "info", "cat_file", "cat"]:
        original = getattr(MemoryFileSystem, method)
        monkeypatch.setattr(MemoryFileSystem, method,
                            lambda self, *a, _m=method, _o=original, **k: (calls.append(_m), _o(self, *a, **k))[1])
    found = cache.load_many(range(64), 3)
    assert sorted(found) == list(range(6))
    assert calls.count("ls") == 1 and calls.count("cat") == 1 and "exists" not in calls and "info" not in calls


def test_file_url_is_the_local_folder(tmp_path):
    url = "file://" + str(tmp_path / "c")
    cache = atlas.FilterCache(url, {"k": 1})
    cache.store(4, image(4), 0.25, 0.1)
    assert cache.folder == url
    plain = atlas.FilterCache(str(tmp_path / "c"), {"k": 1})
    img, score = plain.load(4, 3)
    np.testing.assert_array_equal(img, image(4))
    assert score == 0.25
    assert sorted(os.listdir(tmp_path / "c")) == ["00004.json", "00004.png", "settings.json"]
    (tmp_path / "c" / ".tmp-999999999-1-00006.png").write_bytes(b"half")  # file:// cleans like a path
    assert cache.clean_stale() == 1


def test_folder_for_joins_paths_and_urls(tmp_path):
    assert atlas.cache.folder_for("s3://bucket/kv/", "Res Net", "block/conv", "00ff") == \
        "s3://bucket/kv/Res_Net/block__conv-00ff"
    assert atlas.cache.folder_for(tmp_path, "m", "l", "k") == os.path.join(str(tmp_path), "m", "l-k")
    assert atlas.cache.folder_for("memory://kv", "m", "l", "k") == "memory://kv/m/l-k"
    assert storage.is_url("simplecache::s3://b/k") and storage.is_url("file:///tmp")
    assert not storage.is_url("C:\\Users\\me\\cache") and not storage.is_url("/tmp/kv:1")
    assert not storage.is_url("/tmp/a::b") and not storage.is_url("relative/s3://x")
    assert not storage.is_url(tmp_path)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_cache_pickles_for_other_processes(where, tmp_path, memory_url):
    folder = str(tmp_path / "c") if where == "local" else memory_url + "/c"
    cache = atlas.FilterCache(folder, {"k": 1})
    cache.store(2, image(2), 0.5, 0.1)
    copy = pickle.loads(pickle.dumps(cache))  # as Ray or multiprocessing send it to a worker
    assert copy.folder == folder and copy.settings == {"k": 1}
    copy.store(3, image(3), 0.75, 0.1)
    assert sorted(cache.load_many(range(5), 3)) == [2, 3]


def test_default_cache_dir_may_be_a_url(monkeypatch):
    monkeypatch.setenv("KERASVIZ_CACHE", "s3://bucket/kerasviz")
    assert atlas.default_cache_dir() == "s3://bucket/kerasviz"


def test_a_record_that_never_landed_reads_as_missing_in_memory(memory_url, monkeypatch):
    cache = atlas.FilterCache(memory_url + "/m/l-k", {})
    cache.store(0, image(0), 1.0, 0.1)
    real = MemoryFileSystem.pipe_file

    def die_on_record(self, path, *args, **kwargs):
        if path.endswith("00001.json"):
            raise KeyboardInterrupt  # the writer stops between the picture and its record
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "pipe_file", die_on_record)
    with pytest.raises(KeyboardInterrupt):
        cache.store(1, image(1), 2.0, 0.1)
    monkeypatch.undo()
    assert fsspec.filesystem("memory").exists(memory_url[len("memory://"):] + "/m/l-k/00001.png")
    assert cache.load(1, 3) is None and sorted(cache.load_many(range(3), 3)) == [0]


KILLED = """
import os, signal, numpy as np
from kerasviz.atlas import cache as kvcache, storage
real = storage._atomic_write
def write(path, data):
    if path.endswith("00001.json"):
        os.kill(os.getpid(), signal.SIGKILL)  # killed between the picture and its record
    real(path, data)
storage._atomic_write = write
c = kvcache.FilterCache({folder!r}, {{}})
c.store(0, np.zeros((4, 4, 3), "uint8"), 1.0, 0.1)
c.store(1, np.ones((4, 4, 3), "uint8"), 2.0, 0.1)
"""


def test_a_writer_killed_between_picture_and_record_leaves_a_missing_entry(tmp_path):
    folder = str(tmp_path / "c")
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND="numpy")
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED.format(folder=folder))], env=env,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert sorted(os.listdir(folder)) == ["00000.json", "00000.png", "00001.png", "settings.json"]
    cache = atlas.FilterCache(folder, {})
    assert cache.load(1, 3) is None and sorted(cache.load_many(range(4), 3)) == [0]


def test_broken_entries_read_as_missing(tmp_path):
    cache = atlas.FilterCache(str(tmp_path), {})
    for f in range(4):
        cache.store(f, image(f), float(f), 0.1)
    (tmp_path / "00000.png").write_bytes((tmp_path / "00000.png").read_bytes()[:20])  # a truncated picture
    (tmp_path / "00001.json").write_bytes(b'{"filter": 1, "sco')  # a truncated record
    (tmp_path / "00002.json").write_bytes((tmp_path / "00003.json").read_bytes())  # another filter's record
    assert sorted(cache.load_many(range(4), 3)) == [3]
    assert [cache.load(f, 3) is None for f in range(4)] == [True, True, True, False]


def test_stale_temporary_files_are_removed_locally(tmp_path):
    cache = atlas.FilterCache(str(tmp_path), {})
    assert cache.clean_stale() == 0  # no folder yet
    cache.store(0, image(0), 1.0, 0.1)
    dead = tmp_path / ".tmp-999999999-1-00006.png"
    mine = tmp_path / f".tmp-{os.getpid()}-1-00007.png"  # a write of this process in flight
    dead.write_bytes(b"half")
    mine.write_bytes(b"half")
    assert cache.clean_stale() == 1
    assert not dead.exists() and mine.exists() and sorted(cache.load_many(range(8), 3)) == [0]


def test_an_unknown_protocol_says_so_and_suggests_one():
    with pytest.raises(ValueError, match=r"protocol 'memroy', which fsspec does not know.*Did you mean 'memory'"):
        atlas.FilterCache("memroy://kv/m/l-k", {})


def test_a_protocol_whose_package_is_missing_names_the_package(monkeypatch):
    registry = sys.modules["fsspec.registry"]  # (`fsspec.registry` is the mapping, not the module)
    monkeypatch.setitem(registry.known_implementations, "kvfake",
                        {"class": "kvfake_missing_pkg.FakeFileSystem", "err": "Install kvfake_missing_pkg"})
    with pytest.raises(ImportError, match=r"protocol 'kvfake', which needs the package 'kvfake_missing_pkg': "
                                          r"pip install kvfake_missing_pkg"):
        atlas.FilterCache("kvfake://bucket/kv", {})
    monkeypatch.setitem(sys.modules, "s3fs", None)  # s3fs is not installed here; make sure of it anyway
    monkeypatch.delitem(registry._registry, "s3", raising=False)
    with pytest.raises(ImportError, match=r"needs the package 's3fs': pip install s3fs"):
        atlas.FilterCache("s3://bucket/kv/m/l-k", {})
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    monkeypatch.delitem(registry._registry, "gs", raising=False)
    with pytest.raises(ImportError, match=r"needs the package 'gcsfs'"):
        atlas.FilterCache("gs://bucket/kv", {})


@pytest.mark.parametrize("where", ["local", "memory"])
def test_concurrent_writers_of_one_entry_leave_a_readable_entry(where, tmp_path, memory_url):
    folder = str(tmp_path / "c") if where == "local" else memory_url + "/c"
    writers, entries = 8, 12  # (a writer that just writes picture then record leaves ~1 in 5 entries unreadable)
    pictures = {w: image(100 + w) for w in range(writers)}  # each writer its own picture and score
    start = threading.Barrier(writers)
    errors = []

    def write(w):
        try:
            cache = atlas.FilterCache(folder, {"k": 1})
            for entry in range(entries):
                start.wait()
                for _ in range(3):
                    cache.store(entry, pictures[w], float(w), 0.1)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    found = atlas.FilterCache(folder, {"k": 1}).load_many(range(entries), 3)
    assert sorted(found) == list(range(entries))
    for img, score in found.values():
        np.testing.assert_array_equal(img, pictures[int(score)])  # one writer's picture with its own score
    if where == "local":
        assert not [n for n in os.listdir(folder) if n.startswith(".tmp-")]


def test_importing_kerasviz_does_not_import_fsspec(tmp_path):
    code = ("import sys, kerasviz, kerasviz.atlas; "
            f"kerasviz.atlas.FilterCache({str(tmp_path)!r}, {{}}).load_many(range(3), 3); "
            "print('fsspec' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def make_tiny():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="tiny_fs")


def test_layer_atlas_on_a_memory_url_computes_then_reads_back(memory_url):
    model = make_tiny()
    kw = dict(cache_dir=memory_url, preset="fast", size=32, steps=4, progress=False)
    first = atlas.layer_atlas(model, "conv", **kw)
    assert first.computed == [0, 1, 2, 3] and first.cached == []
    assert first.cache_path.startswith(memory_url + "/tiny_fs/conv-")
    again = atlas.layer_atlas(model, "conv", **kw)
    assert again.computed == [] and again.cached == [0, 1, 2, 3] and again.cache_path == first.cache_path
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.scores, first.scores)


def test_a_bad_cache_url_stops_layer_atlas_before_any_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    model = make_tiny()
    with pytest.raises(ImportError, match="pip install s3fs"):
        atlas.layer_atlas(model, "conv", cache_dir="s3://bucket/kv", preset="fast", size=32, steps=4, progress=False)
    monkeypatch.setenv("KERASVIZ_CACHE", "memroy://kv")
    with pytest.raises(ValueError, match="Did you mean 'memory'"):
        atlas.layer_atlas(model, "conv", preset="fast", size=32, steps=4, progress=False)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_arrays_round_trip_and_read_as_missing_when_foreign_or_corrupt(where, tmp_path, memory_url):
    root = str(tmp_path) if where == "local" else memory_url
    path = storage.join(root, "views", "layer.npz")
    arrays = {"x": np.arange(6).reshape(2, 3), "names": np.asarray(["a", "b"])}
    storage.write_arrays(path, arrays, {"k": 1})
    back = storage.read_arrays(path, {"k": 1})
    assert sorted(back) == ["names", "x"] and back["x"].tolist() == arrays["x"].tolist()
    assert storage.read_arrays(path, {"k": 2}) is None  # written for other settings
    assert storage.read_arrays(storage.join(root, "views", "missing.npz")) is None
    storage.write_file(path, b"PK\x03\x04 not a zip")
    assert storage.read_arrays(path) is None
