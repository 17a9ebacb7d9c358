"""Downloadable public corpora: URL, sha256, licence, a cache, and an offline mirror.

Nothing downloads unless the user names one of these sources. A file is fetched once into
`<cache>/datasets/<set>/` (`LM2LLM_CACHE`, default ~/.cache/lm2llm), streamed into a temporary file while its
sha256 is computed, and renamed into place only when the checksum matches, so a failed or tampered download
leaves nothing behind. With `LM2LLM_DATA_MIRROR=DIR` set, files are copied from `DIR/<set>/<file>` instead
(offline machines, classrooms); the same checksum applies.

Some upstream files have no checksum we could verify when this table was written (`sha256=None`). Such a file
is refused, with its computed sha256 in the message, unless the user passes `trust_unverified`
(`--trust-unverified`); the hash is then pinned next to the file and enforced from then on.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lm2llm.env import cache_dir
from lm2llm.errors import UserError
from lm2llm.runs import atomic_write_text

MIRROR_ENV = "LM2LLM_DATA_MIRROR"
CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str | None  # None: not verified upstream; needs trust_unverified on first fetch
    name: str  # file name in the cache and in a mirror


def dataset_dir(dataset: str) -> Path:
    return cache_dir() / "datasets" / dataset


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _pin_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _expected_sha256(file: RemoteFile, target: Path) -> str | None:
    if file.sha256:
        return file.sha256
    pin = _pin_path(target)
    return pin.read_text(encoding="utf-8").strip() if pin.is_file() else None


def _copy_stream(reader, writer) -> str:
    digest = hashlib.sha256()
    while block := reader.read(CHUNK):
        digest.update(block)
        writer.write(block)
    return digest.hexdigest()


def _fetch_into(file: RemoteFile, dataset: str, handle, timeout: float) -> tuple[str, str]:
    """Copy the file from the mirror or the URL into `handle`; returns (sha256, where it came from)."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        source = Path(mirror) / dataset / file.name
        if not source.is_file():
            raise UserError(f"{MIRROR_ENV} is set but the mirror lacks this file", where=str(source),
                            hint=f"copy it from {file.url}, or unset {MIRROR_ENV} to download")
        with open(source, "rb") as reader:
            return _copy_stream(reader, handle), str(source)
    try:
        with urllib.request.urlopen(file.url, timeout=timeout) as response:  # noqa: S310 - fixed https URLs
            return _copy_stream(response, handle), file.url
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"download failed: {getattr(exc, 'reason', exc)}", where=file.url,
                        hint=f"check the network, or set {MIRROR_ENV} to a directory holding {dataset}/{file.name}") from exc


def fetch(dataset: str, file: RemoteFile, *, trust_unverified: bool = False, timeout: float = 60.0) -> Path:
    """The cached path of `file`, fetching and verifying it first if needed (see the module docstring)."""
    target = dataset_dir(dataset) / file.name
    expected = _expected_sha256(file, target)
    if target.is_file():
        actual = file_sha256(target)
        if expected is None or actual == expected:
            return target
        raise UserError(f"cached file does not match its sha256 (expected {expected}, got {actual})",
                        where=str(target), hint="delete it to fetch it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            actual, origin = _fetch_into(file, dataset, handle, timeout)
            handle.flush()
            os.fsync(handle.fileno())
        if expected is not None and actual != expected:
            raise UserError(f"checksum mismatch: expected sha256 {expected}, got {actual}; nothing was cached",
                            where=origin, hint="the upstream file changed or the transfer was corrupted")
        if expected is None:
            if not trust_unverified:
                raise UserError(f"no verified sha256 is known for this file; the fetched file has sha256 {actual}; "
                                "nothing was cached", where=origin,
                                hint="check that hash against the publisher and re-run with --trust-unverified")
            atomic_write_text(_pin_path(target), actual + "\n")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
