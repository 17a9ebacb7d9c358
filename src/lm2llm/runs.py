"""Run directories and atomic artifact writes.

Every stage writes into `runs/<name>/`: `config.json`, `metrics.jsonl` (append-only, one JSON object per
line, flushed per record) and its artifacts. All whole-file writes go through `atomic_write*`: the data
goes to a temporary file in the same directory, is fsynced, then renamed over the target, so a crash
leaves either the old file or the new one, never a partial file. A whole directory is built the same way,
under a temporary sibling name (`atomic_dir`).

One output policy serves every command with `--out` (`check_out`, `output_dir`, `claim_out`): lm2llm never
deletes what it did not write. Every output directory carries a marker file naming its kind; a non-empty
`--out` is refused unless it holds our own earlier output of the same kind and `--force` is given (or the
stage continues it, as `train --resume` and the tour do). The filesystem root, the home folder, the current
folder and its ancestors, and any `--out` that contains an input are refused always.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import IO, Any

DEFAULT_RUNS_DIR = Path("runs")
OUTPUT_MARKER = ".lm2llm-output"  # JSON {"kind": ...}: written first into every output directory we build
BUILDING = "building"  # a directory is built as .NAME.building-PID-XXXX next to its final name


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
        os.chmod(tmp, _umask_mode())  # a writer that recreates the file (safetensors' save_file) makes it 0o600
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_builds(target: Path) -> list[Path]:
    """Remove `.NAME.building-PID-*` siblings of `target` left by a killed process (PID no longer alive);
    only folders that are empty or carry our marker, so nothing we did not write goes. Returns them."""
    removed = []
    if not target.parent.is_dir():
        return removed
    for build in target.parent.glob(f".{target.name}.{BUILDING}-*"):
        pid = build.name.removeprefix(f".{target.name}.{BUILDING}-").split("-")[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)) or not build.is_dir():
            continue
        if (build / OUTPUT_MARKER).is_file() or not any(build.iterdir()):
            shutil.rmtree(build, ignore_errors=True)
            removed.append(build)
    return removed


def mark_output(directory: Path, kind: str) -> None:
    atomic_write_json(directory / OUTPUT_MARKER, {"kind": kind})


def output_kind(directory: str | os.PathLike) -> str | None:
    """The kind named by a directory's marker, or None when it has none (we did not write it)."""
    try:
        kind = json.loads((Path(directory) / OUTPUT_MARKER).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


@contextmanager
def atomic_dir(path: str | os.PathLike, kind: str | None = None, *, replace: bool = False) -> Iterator[Path]:
    """Yield a new temporary sibling directory of `path` to fill; when the block succeeds it is renamed to
    `path`, otherwise deleted, so `path` is complete or absent. `kind` writes our marker first thing. An
    existing `path` must be empty, unless `replace` is set and it carries the marker of the same `kind`:
    then it is moved aside, the new one renamed in, and the old one deleted. Stale builds of `path` left by
    killed processes are removed first."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_builds(target)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.{BUILDING}-{os.getpid()}-", dir=target.parent))
    os.chmod(build, _umask_mode(0o777))
    try:
        if kind is not None:
            mark_output(build, kind)
        yield build
        old = None
        if target.exists():
            if replace and kind is not None and output_kind(target) == kind:
                old = target.with_name(f".{target.name}.{BUILDING}-{os.getpid()}-old")
                os.replace(target, old)
            else:
                target.rmdir()  # only an empty directory; anything else raises
        os.replace(build, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise


def _stage_of(directory: Path) -> str | None:
    """The `stage` a run's config.json names, or "tour" for a tour's report folder: what outputs written
    before output markers carry instead."""
    if (directory / "report.html").is_file() and (directory / "report.md").is_file():
        return "tour"
    try:
        stage = json.loads((directory / RunDir.CONFIG).read_text(encoding="utf-8")).get("stage")
    except (OSError, ValueError, AttributeError):
        return None
    return stage if isinstance(stage, str) else None


def _refuse(out: Path, message: str, hint: str | None = None) -> None:
    from lm2llm.errors import UserError

    raise UserError(message, where=str(out), hint=hint)


def check_out(out: str | os.PathLike, kind: str, *, force: bool = False, reuse: bool = False,
              inputs: Iterable[str | os.PathLike | None] = ()) -> bool:
    """Apply the output policy to `out` before any work is done (see the module docstring).

    Returns True when `out` already holds our own output of this `kind` and may be replaced (`force`) or
    continued (`reuse`); False when it is absent or empty. Raises UserError otherwise.
    """
    out = Path(out)
    resolved = out.expanduser().resolve()
    if resolved == Path(resolved.anchor):
        _refuse(out, "refusing to write into the filesystem root", "choose a new folder for --out")
    home = Path.home().resolve()
    if home.is_relative_to(resolved):
        _refuse(out, "refusing to write into the home folder or a folder above it", "choose a new folder for --out")
    if Path.cwd().resolve().is_relative_to(resolved):
        _refuse(out, "refusing to write into the current folder or a folder above it", "choose a new folder for --out")
    for given in inputs:
        if given is not None and str(given) and Path(given).exists() \
                and Path(given).expanduser().resolve().is_relative_to(resolved):
            _refuse(out, f"--out is or contains the input {given}", "choose a --out outside the inputs")
    if not out.exists():
        if out.is_symlink():
            _refuse(out, "--out is a dangling symbolic link", "choose a new folder for --out")
        return False
    if not out.is_dir():
        _refuse(out, "--out names an existing file, not a folder", "choose a new folder for --out")
    if all(entry.name == OUTPUT_MARKER for entry in out.iterdir()):
        return False  # empty, or a folder we created and had not written into yet
    owner = output_kind(out)
    if owner == kind and (force or reuse):
        return True
    if owner is None and reuse and _stage_of(out) == kind:  # a run written before markers: continue it, never delete
        return True
    if owner == kind:
        _refuse(out, f"holds an earlier lm2llm {kind} output", "pass --force to replace it, or choose another --out")
    held = f"an lm2llm {owner} output" if owner else "files lm2llm did not write"
    _refuse(out, f"the folder is not empty and holds {held}",
            f"choose another --out; --force only replaces an earlier {kind} output of lm2llm")
    return False


def check_out_file(out: str | os.PathLike, *, force: bool = False, looks_ours: Callable[[Path], bool],
                   inputs: Iterable[str | os.PathLike | None] = ()) -> bool:
    """The output policy for a single-file `--out`: an existing file is replaced only with `force` and only
    when `looks_ours` recognises it as our kind of file (an ARPA file, say); inputs are never overwritten.
    Returns whether the file exists (and will be replaced atomically)."""
    out = Path(out)
    for given in inputs:  # the input itself, or a file inside an input folder
        if given is not None and str(given) and Path(given).exists() and (out.exists() or out.is_symlink()) \
                and out.resolve().is_relative_to(Path(given).resolve()):
            _refuse(out, f"--out would overwrite the input {given}", "choose another --out")
    if out.is_dir():
        _refuse(out, "--out names a folder, not a file", "name a file to write")
    if not out.exists():
        return False
    if not looks_ours(out):
        _refuse(out, "the file exists and is not one lm2llm writes for this command", "choose another --out")
    if not force:
        _refuse(out, "the file exists", "pass --force to replace it, or choose another --out")
    return True


@contextmanager
def output_dir(out: str | os.PathLike, kind: str, *, force: bool = False,
               inputs: Iterable[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """`check_out`, then build the directory atomically with our marker; an earlier output of the same kind
    is replaced (only with `force`) when the new one is complete."""
    replace = check_out(out, kind, force=force, inputs=inputs)
    with atomic_dir(out, kind, replace=replace) as build:
        yield build


def claim_out(out: str | os.PathLike, kind: str, *, force: bool = False, reuse: bool = False,
              inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """`check_out` for a stage that writes in place (training runs, the tour): with `force` (and not
    `reuse`) our earlier output is deleted; the folder is created with our marker. Returns it."""
    out = Path(out)
    owned = check_out(out, kind, force=force, reuse=reuse, inputs=inputs)
    if owned and not reuse:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if output_kind(out) != kind:
        mark_output(out, kind)
    return out


def read_json(path: str | os.PathLike) -> Any:
    from lm2llm.errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError("file not found", where=str(p))
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", where=str(p)) from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text (byte {exc.start})", where=str(p)) from exc
    except RecursionError as exc:
        raise UserError("JSON nested too deeply", where=str(p)) from exc


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
