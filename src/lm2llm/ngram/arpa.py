"""ARPA files: the plain-text format of backoff n-gram models that KenLM, SRILM and others read and write.

    \\data\\ / ngram n=COUNT per order / \\n-grams: lines "log10p<TAB>w1 .. wn[<TAB>log10backoff]" / \\end\\

Written the way lmplz writes it (unigrams in vocabulary order, the highest order without backoffs).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from lm2llm.errors import UserError
from lm2llm.ngram.backoff import BackoffModel
from lm2llm.ngram.counts import NgramTable
from lm2llm.ngram.vocab import BOS, EOS, UNK, Vocabulary
from lm2llm.runs import atomic_open


def _number(x: float) -> str:
    return f"{x:.8g}"


def write_arpa(model: BackoffModel, path: str | os.PathLike) -> Path:
    """Write `model` atomically as ARPA."""
    words = np.array(model.vocab.words, dtype=object)
    with atomic_open(path, "w", encoding="utf-8") as out:
        out.write("\n\\data\\\n")
        for n in range(1, model.order + 1):
            out.write(f"ngram {n}={len(model.keys[n - 1])}\n")
        for n in range(1, model.order + 1):
            out.write(f"\n\\{n}-grams:\n")
            ids = np.arange(len(model.keys[n - 1]))
            grams = model.words_of(n, ids)
            text = [" ".join(row) for row in words[grams]]
            probs, backoffs = model.log10_probs[n - 1], model.log10_backoffs[n - 1]
            if n < model.order:
                out.writelines(f"{_number(p)}\t{t}\t{_number(b)}\n" for p, t, b in zip(probs, text, backoffs, strict=True))
            else:
                out.writelines(f"{_number(p)}\t{t}\n" for p, t in zip(probs, text, strict=True))
        out.write("\n\\end\\\n")
    return Path(path)


def is_arpa_file(path: str | os.PathLike) -> bool:
    """Whether a file starts like an ARPA model (blank lines, then `\\data\\`)."""
    try:
        with open(path, encoding="utf-8") as handle:
            head = handle.read(256)
    except (OSError, UnicodeDecodeError):
        return False
    return head.lstrip().startswith("\\data\\")


def read_arpa(path: str | os.PathLike) -> BackoffModel:
    """Read an ARPA file (ours or KenLM's) into a `BackoffModel`; malformed input raises `UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError("ARPA file not found", where=str(path))
    with open(path, encoding="utf-8") as handle:
        return _parse(handle, str(path))


def _parse(handle: io.TextIOBase, name: str) -> BackoffModel:
    declared: list[int] = []
    sections: list[list[tuple[float, list[str], float]]] = []
    state = "start"
    for number, raw in enumerate(handle, start=1):
        line = raw.strip()
        where = f"{name}:{number}"
        if not line:
            continue
        if line == "\\data\\":
            state = "data"
        elif line == "\\end\\":
            state = "end"
            break
        elif state == "data" and line.startswith("ngram "):
            try:
                n, count = line[6:].split("=")
                declared.append(int(count))
                if int(n) != len(declared):
                    raise ValueError
            except ValueError:
                raise UserError(f"bad count line {line!r}", where=where) from None
        elif line.startswith("\\") and line.endswith("-grams:"):
            n = int(line[1:-7])
            if n != len(sections) + 1:
                raise UserError(f"section {line} out of order", where=where)
            sections.append([])
            state = "grams"
        elif state == "grams":
            fields = line.split("\t") if "\t" in line else line.split()
            n = len(sections)
            try:
                if "\t" in line:
                    prob, gram = float(fields[0]), fields[1].split()
                    backoff = float(fields[2]) if len(fields) > 2 else 0.0
                else:
                    prob, gram = float(fields[0]), fields[1:n + 1]
                    backoff = float(fields[n + 1]) if len(fields) > n + 1 else 0.0
            except (ValueError, IndexError):
                raise UserError(f"bad n-gram line {line!r}", where=where) from None
            if len(gram) != n:
                raise UserError(f"expected {n} words, got {len(gram)}", where=where)
            sections[-1].append((prob, gram, backoff))
        elif state == "start":
            continue  # header text before \data\ is allowed
        else:
            raise UserError(f"unexpected line {line!r}", where=where)
    if state != "end":
        raise UserError("missing \\end\\ (truncated file?)", where=name)
    if [len(s) for s in sections] != declared:
        raise UserError(f"declared counts {declared} but found {[len(s) for s in sections]}", where=name)
    return _build(sections, name)


def _build(sections: list[list[tuple[float, list[str], float]]], name: str) -> BackoffModel:
    unigram_words = [g[0] for _, g, _ in sections[0]]
    specials = [UNK, BOS, EOS]
    missing = [s for s in specials if s not in unigram_words]
    if missing:
        raise UserError(f"the unigrams lack {missing}", where=name)
    words = specials + [w for w in unigram_words if w not in specials]
    vocab = Vocabulary(words)
    size = len(vocab)
    uni_order = np.array([vocab.index[w] for w in unigram_words])
    probs = [np.zeros(size)]
    backoffs = [np.zeros(size)]
    probs[0][uni_order] = [p for p, _, _ in sections[0]]
    backoffs[0][uni_order] = [b for _, _, b in sections[0]]
    keys = [np.arange(size, dtype=np.int64)]
    for n in range(2, len(sections) + 1):
        grams = sections[n - 1]
        word_ids = np.array([[vocab.index.get(w, -1) for w in g] for _, g, _ in grams], dtype=np.int64).reshape(len(grams), n)
        if (word_ids < 0).any():
            raise UserError(f"a {n}-gram uses a word that is not a unigram", where=name)
        table = NgramTable(vocab, keys)
        context = word_ids[:, 0]
        for m in range(2, n):
            context = table.lookup(m, context, word_ids[:, m - 1])
        if (context < 0).any():
            bad = " ".join(grams[int(np.flatnonzero(context < 0)[0])][1])
            raise UserError(f"the context of {n}-gram {bad!r} is not listed", where=name)
        packed = context * size + word_ids[:, -1]
        sort = np.argsort(packed, kind="stable")
        keys.append(packed[sort])
        probs.append(np.array([p for p, _, _ in grams])[sort])
        backoffs.append(np.array([b for _, _, b in grams])[sort])
    return BackoffModel(vocab, keys, probs, backoffs)
