"""Run directories and atomic artifact writes.

Every stage writes into `runs/<name>/`: `config.json`, `metrics.jsonl` (append-only, one JSON object per
line, flushed per record) and its artifacts. All whole-file writes go through `atomic_write*`: the data
goes to a temporary file in the same directory, is fsynced, then renamed over the target, so a crash
leaves either the old file or the new one, never a partial file. A whole directory is built the same way,
under a temporary sibling name (`atomic_dir`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import IO, Any

DEFAULT_RUNS_DIR = Path("runs")


def _umask_mode(requested: int = 0o666) -> int:
    """The mode a normally created file (0o666) or directory (0o777) gets, less the umask; mkstemp and
    mkdtemp alone would give 0o600 and 0o700."""
    mask = os.umask(0)
    os.umask(mask)
    return requested & ~mask


def _temp_sibling(target: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, _umask_mode())
    os.close(fd)
    return Path(name)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success fsync it and rename it over `path`, else delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; on success it replaces `path` atomically.

    On any exception the temporary file is removed and `path` is untouched.
    """
    with _replacing(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths and numpy/torch scalars become plain JSON values."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN/Infinity; a missing value reads as null everywhere

    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        return to_jsonable(obj.item())
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def atomic_save(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Atomically create `path` with a library writer that takes a filename (e.g. safetensors' save_file)."""
    with _replacing(path) as tmp:
        writer(tmp)
    return Path(path)


@contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield a new temporary sibling directory of `path` to fill; when the block succeeds it is renamed to
    `path`, otherwise deleted, so `path` is complete or absent. An existing `path` must be empty, unless
    `replace` is set: then it is removed just before the rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(build, _umask_mode(0o777))
    try:
        yield build
        if target.exists():
            shutil.rmtree(target) if replace else target.rmdir()
        os.replace(build, target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise


def read_json(path: str | os.PathLike) -> Any:
    from lm2llm.errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError("file not found", where=str(p))
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", where=str(p)) from exc


class RunDir:
    """A run directory: the documented contract between stages (see docs/architecture.md)."""

    CONFIG = "config.json"
    METRICS = "metrics.jsonl"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | os.PathLike, config: Any | None = None) -> RunDir:
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        if config is not None:
            run.write_config(config)
        return run

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: Any) -> Path:
        return atomic_write_json(self.path / self.CONFIG, config)

    def read_config(self) -> dict:
        return read_json(self.path / self.CONFIG)

    def log_metrics(self, record: dict) -> None:
        """Append one record to metrics.jsonl and flush it to disk, so a crash loses at most that line."""
        record = {"time": round(time.time(), 3), **to_jsonable(record)}
        with open(self.path / self.METRICS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def read_metrics(self) -> list[dict]:
        path = self.path / self.METRICS
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
