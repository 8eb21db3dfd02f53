"""Every `>>>` example in the package's docstrings runs, module by module, so a stale example fails.

Each module's examples run in one namespace (`kv`, `np`, `keras` given) inside a fresh folder that holds
`photos/` (four small JPEGs) and `cat.jpg`, the files the examples name. Nothing is downloaded: the examples
use `weights="hed"` (the VGG16 backbone a package ships) or `weights=None`.
"""

import doctest
import importlib
import os
import pkgutil

import keras
import numpy as np
import pytest

import kerasviz as kv

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
PHOTO_SIZE = (96, 128)  # rows, columns of the sample photos


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(kv.__path__, prefix="kerasviz."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        finder = doctest.DocTestFinder(exclude_empty=True)
        if any(t.examples for t in finder.find(module, module.__name__)):
            names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


@pytest.fixture(scope="module")
def sample_folder(tmp_path_factory):
    """A folder with `photos/` and `cat.jpg`, made from scikit-image's sample photos."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("docstring-examples")
    (root / "photos").mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = Image.fromarray(getattr(data, name)()).convert("RGB").resize(PHOTO_SIZE[::-1])
        image.save(root / "photos" / f"{name}.jpg", quality=90)
    Image.fromarray(data.chelsea()).convert("RGB").resize(PHOTO_SIZE[::-1]).save(root / "cat.jpg", quality=90)
    return root


def test_the_package_has_examples():
    assert len(MODULES) >= 10, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, sample_folder, tmp_path, monkeypatch):
    for item in sample_folder.iterdir():
        os.symlink(item, tmp_path / item.name)
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    globs = {"kv": kv, "np": np, "keras": keras}
    for test in sorted(doctest.DocTestFinder(exclude_empty=True).find(module, name), key=lambda t: t.lineno or 0):
        test.globs = globs  # one namespace per module: an example may use what an earlier one made
        runner.run(test, out=report.append, clear_globs=False)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0
    assert failed == 0, "".join(report)
