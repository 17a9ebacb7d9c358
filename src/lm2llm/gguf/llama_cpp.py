"""llama.cpp itself, as the reference that reads GGUF files: its C library driven through `ctypes`.

llama.cpp is the program GGUF was made for, so "llama.cpp loads our export and scores text as we do" is
the test of our writer, and its decoding speed is the CPU anchor for our engine. `llama-cpp-python` ships
only as a C++ source package whose build does not fit this machine's time; the npm package
`@node-llama-cpp/linux-x64` (MIT, the prebuilt CPU libraries of node-llama-cpp) carries the same
`libllama` ready-built. `make setup` unpacks it into `.venv/llama-cpp/` when npm is present; set
`LM2LLM_LLAMA_CPP` to another folder holding `libllama*.so` to use your own build.

Only the stable core of llama.h is used: load a model, make a context, tokenize, decode a batch of
token ids, read logits. Parameter structs are taken from llama.cpp's own defaults and passed back whole
(held in a buffer larger than any version's struct), and the three fields we set (context, batch and
micro-batch size, the first three of `llama_context_params`) are checked after the context is made
(llama.cpp rounds the context size up to a multiple of 256).
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np

from lm2llm.errors import UserError

NPM_PACKAGE = "@node-llama-cpp/linux-x64@3.22.1"


class _Params(ctypes.Structure):
    """llama_model_params / llama_context_params, opaque: llama.cpp's defaults, returned and passed whole."""

    _fields_ = [("raw", ctypes.c_uint8 * 2048)]


class _Batch(ctypes.Structure):
    """llama_batch: token ids and, per token, whether its logits are wanted (positions filled in by llama.cpp)."""

    _fields_ = [("n_tokens", ctypes.c_int32), ("token", ctypes.POINTER(ctypes.c_int32)), ("embd", ctypes.c_void_p),
                ("pos", ctypes.c_void_p), ("n_seq_id", ctypes.c_void_p), ("seq_id", ctypes.c_void_p),
                ("logits", ctypes.POINTER(ctypes.c_int8))]


def library_dir() -> Path | None:
    """The folder holding libllama, or None when llama.cpp is not installed."""
    configured = os.environ.get("LM2LLM_LLAMA_CPP")
    candidates = [Path(configured)] if configured else [Path(sys.prefix) / "llama-cpp" / "package" / "bins" / "linux-x64"]
    for folder in candidates:
        if any(folder.glob("libllama*.so")):
            return folder
    return None


_LIB: ctypes.CDLL | None = None
_LOG_SINK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)(lambda level, text, data: None)


def _library() -> ctypes.CDLL:
    """Load libllama and its CPU backends once, with llama.cpp's own logging silenced."""
    global _LIB
    if _LIB is not None:
        return _LIB
    folder = library_dir()
    if folder is None:
        raise UserError("llama.cpp is not installed", where="LM2LLM_LLAMA_CPP",
                        hint=f"run `make setup` with npm present (it unpacks {NPM_PACKAGE}), or point "
                             "LM2LLM_LLAMA_CPP at a folder with libllama*.so")
    ggml = ctypes.CDLL(str(min(folder.glob("libggml.*so"))), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(min(folder.glob("libllama*.so"))), mode=ctypes.RTLD_GLOBAL)
    lib.llama_log_set(_LOG_SINK, None)
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load_all_from_path(str(folder).encode())  # the CPU backend built for this CPU
    signatures = {
        "llama_backend_init": ([], None),
        "llama_model_default_params": ([], _Params),
        "llama_context_default_params": ([], _Params),
        "llama_model_load_from_file": ([ctypes.c_char_p, _Params], ctypes.c_void_p),
        "llama_init_from_model": ([ctypes.c_void_p, _Params], ctypes.c_void_p),
        "llama_n_ctx": ([ctypes.c_void_p], ctypes.c_uint32),
        "llama_set_n_threads": ([ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32], None),
        "llama_decode": ([ctypes.c_void_p, _Batch], ctypes.c_int32),
        "llama_get_logits_ith": ([ctypes.c_void_p, ctypes.c_int32], ctypes.POINTER(ctypes.c_float)),
        "llama_get_memory": ([ctypes.c_void_p], ctypes.c_void_p),
        "llama_memory_clear": ([ctypes.c_void_p, ctypes.c_bool], None),
        "llama_model_get_vocab": ([ctypes.c_void_p], ctypes.c_void_p),
        "llama_vocab_n_tokens": ([ctypes.c_void_p], ctypes.c_int32),
        "llama_tokenize": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int32),
                            ctypes.c_int32, ctypes.c_bool, ctypes.c_bool], ctypes.c_int32),
        "llama_free": ([ctypes.c_void_p], None),
        "llama_model_free": ([ctypes.c_void_p], None),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    lib.llama_backend_init()
    _LIB = lib
    return lib


class LlamaCpp:
    """One GGUF model in llama.cpp with one context: tokenize, score token ids, decode greedily."""

    def __init__(self, path: str | Path, n_ctx: int = 512, threads: int = 1):
        self.lib = _library()
        self.model = self.lib.llama_model_load_from_file(str(path).encode(), self.lib.llama_model_default_params())
        if not self.model:
            raise UserError("llama.cpp could not load this file", where=str(path))
        params = self.lib.llama_context_default_params()
        sizes = (ctypes.c_uint32 * 3).from_buffer(params.raw)  # n_ctx, n_batch, n_ubatch
        sizes[0] = sizes[1] = sizes[2] = n_ctx
        self.ctx = self.lib.llama_init_from_model(self.model, params)
        granted = self.lib.llama_n_ctx(self.ctx) if self.ctx else 0
        if not n_ctx <= granted <= n_ctx + 256:  # llama.cpp rounds the context up to a multiple of 256
            self.close()
            raise UserError("llama.cpp's context parameters do not have the layout this binding expects",
                            where=str(library_dir()), hint=f"use the pinned {NPM_PACKAGE}")
        self.lib.llama_set_n_threads(self.ctx, threads, threads)
        self.vocab = self.lib.llama_model_get_vocab(self.model)
        self.n_vocab = self.lib.llama_vocab_n_tokens(self.vocab)
        self.n_ctx = n_ctx

    def tokenize(self, text: str, add_special: bool = False, parse_special: bool = False) -> list[int]:
        data = text.encode()
        room = len(data) + 8
        out = (ctypes.c_int32 * room)()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), out, room, add_special, parse_special)
        if n < 0:
            raise UserError(f"llama.cpp needs room for {-n} tokens", where="tokenize")
        return list(out[:n])

    def reset(self) -> None:
        """Forget every token fed so far (the KV cache is cleared)."""
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)

    def feed(self, ids: list[int], all_logits: bool = False) -> None:
        """Decode `ids` after what was fed before; logits kept for every token or only the last."""
        if not ids:
            raise UserError("nothing to decode", where="ids")
        tokens = (ctypes.c_int32 * len(ids))(*ids)
        wanted = (ctypes.c_int8 * len(ids))(*([1] * len(ids) if all_logits else [0] * (len(ids) - 1) + [1]))
        status = self.lib.llama_decode(self.ctx, _Batch(len(ids), tokens, None, None, None, None, wanted))
        if status != 0:
            raise UserError(f"llama_decode failed with status {status}", where="ids",
                            hint=f"at most {self.n_ctx} tokens fit this context")

    def logits_at(self, index: int) -> np.ndarray:
        """The logits (vocab,) of the `index`-th output of the last `feed` (−1: the last token)."""
        pointer = self.lib.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def score(self, ids: list[int]) -> np.ndarray:
        """Logits (T, vocab) of every position of `ids`, from an empty cache."""
        self.reset()
        self.feed(ids, all_logits=True)
        return np.stack([self.logits_at(i) for i in range(len(ids))])

    def greedy(self, prompt: list[int], new_tokens: int) -> list[int]:
        """Prompt, then `new_tokens` argmax tokens one at a time (what a decoding benchmark times)."""
        self.reset()
        self.feed(prompt)
        out = [int(np.argmax(self.logits_at(-1)))]
        while len(out) < new_tokens:
            self.feed([out[-1]])
            out.append(int(np.argmax(self.logits_at(-1))))
        return out

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            self.lib.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> LlamaCpp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
