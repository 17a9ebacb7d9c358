"""Freed memory is kept for reuse: the same large tensor allocated again does not fault its pages in again."""

import os
import platform
import subprocess
import sys

import pytest

from lm2llm.allocator import KEEP_ENV, keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Allocates and frees a 64 MiB tensor 20 times and prints the minor page faults that cost.
FAULTS = """
import resource, sys, torch
from lm2llm.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
torch.ones(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.ones(16 * 2**20).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, inherited: dict[str, str] | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k not in KEEP_ENV} | (inherited or {})
    done = subprocess.run([sys.executable, "-c", FAULTS, mode], env=env, capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's malloc's")
def test_kept_memory_is_not_faulted_in_again():
    default, kept, inherited = _faults("default"), _faults("keep"), _faults("default", KEEP_ENV)
    assert default > 20 * 16_000  # each 64 MiB tensor faults its 16,384 pages in again
    assert kept < default / 2  # measured: 328k by default, 49k–98k kept (the heap grows a few times, then reuses)
    assert inherited < default / 2  # a child process that only inherits the environment keeps its memory too


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's malloc's")
def test_the_setting_is_passed_on_once_and_yields_to_the_users_own(monkeypatch):
    for name in KEEP_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    assert not keep_freed_memory() and os.environ["MALLOC_MMAP_MAX_"] == "65536"  # the user's choice stands
    monkeypatch.delenv("MALLOC_MMAP_MAX_")
    assert keep_freed_memory()
    assert {name: os.environ[name] for name in KEEP_ENV} == KEEP_ENV  # what processes started from here read
    assert not keep_freed_memory()  # applied once
