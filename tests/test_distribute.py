import numpy as np
import pytest

import kerasviz as kv
from kerasviz.engine import backend, distribute


def test_the_local_executor_is_the_identity():
    ex = distribute.read(None)
    assert ex.replicas == 1
    x = np.arange(6, dtype="float32").reshape(3, 2)
    np.testing.assert_array_equal(ex.get(ex.call(lambda a, k: a * k, ex.put(x), 2.0)), 2 * x)


def test_pad_repeats_the_last_item_to_a_multiple_of_the_replicas():
    assert distribute.pad([3, 5, 9], 2) == [3, 5, 9, 9]
    assert distribute.pad([3, 5], 2) == [3, 5]
    assert distribute.pad([1, 2, 3, 4, 5], 4) == [1, 2, 3, 4, 5, 5, 5, 5]


def test_a_strategy_splits_the_batch_and_gathers_it_back():
    import tensorflow as tf

    ex = distribute.read(tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert isinstance(ex, distribute.Replicated) and ex.replicas == 1
    x = np.arange(8, dtype="float32").reshape(4, 2)
    out = ex.call(tf.function(lambda a, k: a + k), ex.put(x), ex.put(np.float32(1.0)))
    np.testing.assert_array_equal(ex.get(out), x + 1)


def test_bad_distribute_values_are_explained(monkeypatch):
    import tensorflow as tf

    kinds = r"distribute must be None, a tf.distribute.Strategy .* or a kv.distribute.Ray\(...\). Received: "
    for bad in ("gpu", True, ["/cpu:0"], []):  # no other spelling: a device list is a MirroredStrategy(devices)
        with pytest.raises(TypeError, match=kinds):
            distribute.read(bad)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    monkeypatch.setattr(backend, "runs_strategies", lambda: False)
    monkeypatch.setattr(backend, "name", lambda: "jax")
    with pytest.raises(ValueError, match="needs the TensorFlow backend; this is 'jax'"):
        distribute.read(strategy)
    with pytest.raises(TypeError, match=kinds):
        distribute.read("gpu")


def test_ray_settings_are_checked_where_written():
    cluster = distribute.Ray(address="auto", num_gpus=0.5)
    assert cluster.num_cpus == 1.0 and cluster.threads == 1 and cluster.max_retries == 3
    assert distribute.Ray(num_cpus=2.5).threads == 3
    assert distribute.Ray(init_options={"namespace": "x"}) == distribute.Ray()  # options are no part of its identity
    for bad, message in [(dict(num_gpus=-1), r"num_gpus=\.\.\.\) must be a number >= 0. Received: num_gpus=-1"),
                         (dict(num_cpus="2"), "num_cpus=...\\) must be a number"),
                         (dict(num_cpus=0), "must ask for a CPU or a GPU share"),
                         (dict(workers=0), "workers=...\\) must be an int >= 1 or None"),
                         (dict(max_retries=-1), "max_retries=...\\) must be an int >= 0")]:
        with pytest.raises(ValueError, match=message):
            distribute.Ray(**bad)


def test_ray_is_never_imported_unless_asked_for_and_missing_ray_is_explained(monkeypatch):
    import subprocess
    import sys

    code = ("import sys, kerasviz as kv; from kerasviz.atlas import atlases, cluster; kv.distribute.Ray(num_gpus=1); "
            "kv.distribute.read(kv.distribute.Ray()); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ImportError, match=r'needs Ray, which is not installed: pip install "kerasviz\[ray\]"'):
        distribute.Ray().connect()


def test_distribute_has_one_reader_and_ray_is_for_atlases():
    assert isinstance(distribute.read(None), distribute.Local)
    cluster = distribute.Ray(workers=2)
    assert distribute.read(cluster) is cluster
    with pytest.raises(ValueError, match=r"runs the batches of an atlas on Ray workers: use kv.layer_atlas, "
                                         r"kv.model_atlas or `kerasviz gallery --ray`"):
        distribute.read(cluster, ray=False)


@pytest.mark.parametrize("call", [
    lambda m, ray: kv.visualize_filters(m, "conv2", [0], size=24, steps=1, distribute=ray),
    lambda m, ray: kv.optimize.plan(m, "conv2", [0], size=24, steps=1, distribute=ray),
    lambda m, ray: kv.render(m, kv.objectives.channel("conv2", 0), size=24, steps=1, distribute=ray),
], ids=["visualize_filters", "plan", "render"])
def test_the_in_process_entry_points_send_ray_to_the_atlases(tiny_cnn, call):
    with pytest.raises(ValueError, match="use kv.layer_atlas, kv.model_atlas"):
        call(tiny_cnn, distribute.Ray(workers=1))


def test_a_plan_builds_its_executor_once_for_every_chunk(tiny_cnn, monkeypatch):
    p = kv.optimize.plan(tiny_cnn, "conv2", range(4), preset="fast", size=24, steps=2, batch_size=2)
    built = []
    monkeypatch.setattr(distribute.Local, "__init__", lambda self: built.append(self))
    p.run(progress=False)
    assert len(p.chunks()) == 2 and built == []  # the plan's executor ran both chunks
