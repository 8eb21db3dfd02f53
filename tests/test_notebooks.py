"""Run every notebook in notebooks/ in quick mode, so a notebook that breaks fails the tests.

Each notebook reads KERASVIZ_QUICK=1 and shrinks sizes, steps, filter counts and epochs; it runs in a
temporary copy (the committed notebooks, with the outputs of a full run, are never written).
"""

import os
import pathlib
import shutil

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell: quick mode takes a few; a hang fails instead of blocking CI


def test_notebooks_found():
    names = [p.name for p in NOTEBOOKS]
    assert names[:1] == ["01_quickstart.ipynb"] and len(names) >= 6, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    for helper in NOTEBOOK_DIR.glob("*.py"):  # local helpers the notebooks may import
        shutil.copy(helper, tmp_path)
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    before = path.read_bytes()
    monkeypatch.setenv("KERASVIZ_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("KERASVIZ_CACHE", str(tmp_path / "cache"))
    repo = str(NOTEBOOK_DIR.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(copy, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed in quick mode:\n{error}")
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), "not every code cell ran"
    assert "quick mode" in "".join(o.get("text", "") for o in code[0].outputs), "the notebook ignored KERASVIZ_QUICK"
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    assert path.read_bytes() == before, "the committed notebook was changed"
