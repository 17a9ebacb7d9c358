"""Data lineage: every run directory records the data it was trained on, and a card for each corpus.

`record_lineage(run, data, parents)` writes two files into a run:
- `lineage.json`: for each input, its source name, kind, files with size and sha256, licence, provenance
  and PII figures; and the lineage of the runs it started from (the base of a fine-tune), so a model's
  whole data history is in its own folder.
- `DATA.md`: the same as a dataset card per corpus (licence, provenance, PII scrubbed or found).

An input is a prepared dataset (`lm2llm data prepare`'s folder: source, licence and PII counts from its
`config.json`/`stats.json`), a registered source name, or a local file/folder. For local files the licence
and provenance come from a `LICENSE*`/`ATTRIBUTION*` file beside them when there is one, and the PII
figures are what the detector finds in the text (nothing was scrubbed): a card that says "unknown" is
the honest answer, not a gap to fill by guessing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from lm2llm.runs import atomic_write_json, atomic_write_text

LINEAGE_FILE, CARD_FILE = "lineage.json", "DATA.md"
DATASET_FILES = ("train.bin", "val.bin", "meta.json", "documents.jsonl")
TEXT_SUFFIXES = {".txt", ".jsonl", ".json", ".tsv", ".csv", ".md"}
PII_SCAN_LIMIT = 20_000_000  # characters scanned for PII in local files; larger inputs are sampled from the start


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_entry(path: Path) -> dict:
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _beside(folder: Path, prefix: str) -> Path | None:
    return next((p for p in sorted(folder.glob(f"{prefix}*")) if p.is_file()), None)


def local_licence(folder: Path) -> tuple[str, str]:
    """(licence, provenance) from LICENSE*/ATTRIBUTION* files in `folder`, or 'unknown'."""
    licence_file, attribution = _beside(folder, "LICENSE"), _beside(folder, "ATTRIBUTION")
    licence = next((line.strip("# ").strip() for line in licence_file.read_text(errors="replace").splitlines()
                    if line.strip()), "unknown") if licence_file else "unknown: no LICENSE file beside the data"
    provenance = next((line.split(":", 1)[1].strip() for line in attribution.read_text(errors="replace").splitlines()
                       if line.strip("- ").lower().startswith("source:")), None) if attribution else None
    return licence, provenance or "local files (no ATTRIBUTION file)"


def _pii_found(files: list[Path]) -> dict[str, int]:
    from lm2llm.data.pii import scrub

    found: Counter = Counter()
    budget = PII_SCAN_LIMIT
    for path in files:
        if path.suffix.lower() not in TEXT_SUFFIXES or budget <= 0:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")[:budget]
        budget -= len(text)
        found.update(scrub(text)[1])
    return dict(found)


def local_source(spec: str) -> dict:
    """For `data prepare` of local files: the licence and provenance found beside them, and every input
    file with its size and sha256 (what the dataset card lists)."""
    from lm2llm.data.readers import expand_paths

    files = expand_paths(spec)
    folder = Path(spec) if Path(spec).is_dir() else files[0].parent
    licence, provenance = local_licence(folder)
    return {"licence": licence, "provenance": provenance, "files": [_file_entry(f) for f in files]}


def describe_input(item: str | Path) -> dict:
    """Lineage of one data input (see the module docstring)."""
    from lm2llm.data.sources import describe, registry

    path = Path(item)
    if path.is_dir() and (path / "stats.json").is_file() and (path / "config.json").is_file():
        config, stats = _read_json(path / "config.json"), _read_json(path / "stats.json")
        source = describe(str(config.get("source", "unknown")))
        return {"input": str(path.resolve()), "kind": "prepared dataset", "source": source["name"],
                "source_kind": source["kind"], "licence": source["licence"],
                "provenance": "; ".join([source.get("description", "")]
                                        + [f"{f['url']} (sha256 {f['sha256']})" for f in source.get("files", [])]),
                "files": [_file_entry(path / f) for f in DATASET_FILES if (path / f).is_file()],
                "pii": {"scrubbed": bool(config.get("scrub_pii", False)), "replaced": stats.get("pii", {})},
                "documents": stats.get("funnel", {}).get("stages", {})}
    if path.exists():
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        licence, provenance = local_licence(path if path.is_dir() else path.parent)
        return {"input": str(path.resolve()), "kind": "local files", "source": path.name, "source_kind": "local",
                "licence": licence, "provenance": provenance, "files": [_file_entry(p) for p in files],
                "pii": {"scrubbed": False, "found": _pii_found(files)}}
    if str(item) in registry():
        source = describe(str(item))
        return {"input": str(item), "kind": "registered source", "source": source["name"],
                "source_kind": source["kind"], "licence": source["licence"], "provenance": source["description"],
                "files": source.get("files", []), "pii": {"scrubbed": False, "found": "not scanned"}}
    return {"input": str(item), "kind": "generated", "source": str(item), "source_kind": "generated in code",
            "licence": "lm2llm's own (Apache-2.0)", "provenance": "made by lm2llm at run time", "files": [],
            "pii": {"scrubbed": False, "found": "none by construction"}}


def run_lineage(run: str | Path, data: list, parents: list | None = None) -> dict:
    inputs = [describe_input(d) for d in data if d]
    ancestors = []
    for parent in filter(None, parents or []):
        recorded = _read_json(Path(parent) / LINEAGE_FILE)
        ancestors.append(recorded or {"run": str(parent), "note": "no lineage recorded for this run"})
    return {"run": str(Path(run).resolve()), "data": inputs, "parents": ancestors}


def _corpora(lineage: dict) -> list[dict]:
    """Every input of the run and of its ancestors, each once."""
    seen, out = set(), []
    for entry in lineage.get("data", []) + [c for p in lineage.get("parents", []) for c in _corpora(p)]:
        if entry["input"] not in seen:
            seen.add(entry["input"])
            out.append(entry)
    return out


def lineage_card(lineage: dict) -> str:
    parts = [f"# Data card: {Path(lineage['run']).name}", "",
             "Written by lm2llm when the run was made: every corpus this model (and the runs it started from) "
             "was trained on.", ""]
    for entry in _corpora(lineage):
        pii = entry["pii"]
        counts = pii.get("replaced") if pii["scrubbed"] else pii.get("found")
        figures = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if isinstance(counts, dict) else counts
        parts += [f"## {entry['source']}", "",
                  "| field | value |", "|---|---|",
                  f"| input | {entry['input']} ({entry['kind']}) |",
                  f"| licence | {entry['licence']} |",
                  f"| provenance | {entry['provenance']} |",
                  f"| PII | {'scrubbed, replaced: ' if pii['scrubbed'] else 'not scrubbed, detector finds: '}"
                  f"{figures or 'none'} |", ""]
        parts += [f"- `{f.get('path') or f.get('url')}` sha256 {f.get('sha256')}" for f in entry["files"]] + [""]
    return "\n".join(parts)


def record_lineage(run: str | Path, data: list, parents: list | None = None) -> dict[str, Any]:
    """Write `lineage.json` and `DATA.md` into `run`; returns the lineage."""
    lineage = run_lineage(run, data, parents)
    atomic_write_json(Path(run) / LINEAGE_FILE, lineage)
    atomic_write_text(Path(run) / CARD_FILE, lineage_card(lineage))
    return lineage
