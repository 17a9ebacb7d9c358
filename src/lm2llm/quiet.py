"""Quiet by default: what lm2llm prints is its own results, not the chatter of the libraries under it.

Without `--verbose` (or `LM2LLM_VERBOSE=1`) the CLI silences, for itself and the processes it starts:
transformers' and huggingface_hub's progress bars and advice (environment variables both libraries read
when imported), matplotlib's missing-glyph warnings (a figure that lacks a glyph is a bug the plot tests
catch, not news for the user), and native code that writes straight to file descriptor 2, such as
KenLM's "Loading the LM will be faster if you build a binary file" (`native_stderr_silenced`), and Python
warnings raised from other packages than lm2llm (torch's and transformers' deprecation notes).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

VERBOSE_ENV = "LM2LLM_VERBOSE"
# Read by transformers and huggingface_hub at import; inherited by the tour's and selection's subprocesses.
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
}
GLYPH_WARNING = r"Glyph \d+ .*missing from (current )?font"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def set_verbose(on: bool) -> None:
    """`--verbose` (or LM2LLM_VERBOSE=1): show the libraries' own output; otherwise silence it."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    elif not verbose():
        quiet_third_parties()


def quiet_third_parties() -> None:
    """Silence the libraries' progress bars, advice and warnings (environment settings the user made win)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", module=r"(?!lm2llm\b)")  # other packages' deprecation notes and advice
    warnings.filterwarnings("ignore", message=GLYPH_WARNING)
    python_warnings = os.environ.get("PYTHONWARNINGS", "")
    if "Glyph" not in python_warnings:  # the same filter for child processes (a message's start)
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [python_warnings, "ignore:Glyph"]))
    if "transformers" in sys.modules:  # imported before the environment could say so
        from transformers.utils import logging

        logging.set_verbosity_error()
        logging.disable_progress_bar()


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block, unless verbose: native libraries (KenLM) print
    there directly, past Python's `sys.stderr`."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
