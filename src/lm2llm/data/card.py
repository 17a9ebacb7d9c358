"""DATASET.md: a dataset card (in the spirit of "Datasheets for Datasets") written from measured statistics:
where the text came from and under what licence, what each stage removed, what PII was replaced, and how
the split and shards were made."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def funnel_rows(funnel: dict) -> list[list[Any]]:
    """(stage, documents left, removed at this stage, why) — every input document accounted for."""
    filtered = funnel["filtered"]
    stages = funnel["stages"]
    return [
        ["in", stages["in"], "", "documents read"],
        ["cleaned", stages["cleaned"], funnel["empty"], "empty after cleaning"],
        ["deduplicated", stages["deduplicated"], funnel["exact_duplicates"] + funnel["near_duplicates"],
         f"{funnel['exact_duplicates']} exact, {funnel['near_duplicates']} near duplicates"],
        ["filtered", stages["filtered"], sum(filtered.values()),
         ", ".join(f"{n} {reason}" for reason, n in sorted(filtered.items())) or "none"],
        ["out", stages["out"], "", f"{funnel['train']} train, {funnel['val']} val"],
    ]


def dataset_card(config: Any, stats: dict, source: dict) -> str:
    settings = asdict(config)
    funnel = stats["funnel"]
    read = stats["read"]
    pii = stats["pii"]
    tokens = stats["tokens"]
    dedup, quality = settings["dedup"], settings["quality"]
    parts = [
        f"# Dataset card: {source['name']}",
        "",
        "Made by `lm2llm data prepare`; every figure below was measured while the data was processed.",
        "",
        "## Source",
        "",
        _table(["field", "value"], [[k, source[k]] for k in ("name", "kind", "language", "licence", "description",
                                                             "provenance") if k in source]
               + [["file", f"{f.get('url') or f.get('path')} (sha256 {f['sha256'] or 'pinned on first use'})"]
                  for f in source.get("files", [])]),
        "",
        "## Funnel",
        "",
        _table(["stage", "documents", "removed", "why"], funnel_rows(funnel)),
        "",
        f"Every document is accounted for: {'yes' if funnel['balanced'] else 'NO'}. "
        f"Characters: {stats['chars_in']:,} in, {stats['chars_out']:,} out.",
        "",
        "## Reading and cleaning",
        "",
        f"- files read: {read.get('files', 0)}; binary files skipped: {read.get('binary_files_skipped', 0)}; "
        f"invalid UTF-8 sequences replaced: {read.get('invalid_utf8_sequences', 0)}; "
        f"malformed rows skipped: {read.get('bad_rows_skipped', 0)}",
        f"- Unicode NFC, line endings unified, trailing spaces cut, blank-line runs collapsed; "
        f"control/invisible characters removed: {stats['control_chars_removed']}",
        "",
        "## Deduplication",
        "",
        f"- exact (content hash): {'on' if dedup['exact'] else 'off'}, removed {funnel['exact_duplicates']}",
        f"- near (MinHash, {dedup['num_perm']} permutations, LSH; {dedup['shingle']} {dedup['shingle_size']}-grams, "
        f"Jaccard ≥ {dedup['threshold']}): {'on' if dedup['near'] else 'off'}, removed {funnel['near_duplicates']}",
    ]
    for example in stats["near_examples"]:
        parts.append(f"  - `{example['removed']}` ≈ `{example['kept']}` (estimated Jaccard {example['estimated_jaccard']})")
    parts += [
        "",
        "## Quality filters",
        "",
        _table(["rule", "threshold", "dropped"], [
            ["length", f"{quality['min_chars']}–{quality['max_chars']} characters",
             funnel["filtered"].get("too_short", 0) + funnel["filtered"].get("too_long", 0)],
            ["symbol ratio", f"≤ {quality['max_symbol_ratio']}", funnel["filtered"].get("symbol_ratio", 0)],
            ["repeated-line ratio", f"≤ {quality['max_repeated_line_ratio']}", funnel["filtered"].get("repeated_lines", 0)],
        ]),
        "",
        "## Personal information",
        "",
        ("Scrubbed: each match replaced by a typed placeholder such as `<EMAIL>`." if settings["scrub_pii"]
         else "Scrubbing was turned off (--no-scrub-pii): the text may contain personal information."),
        "",
        _table(["type", "replaced"], [[kind, n] for kind, n in sorted(pii.items())] or [["(none found)", 0]]),
        "",
        "Rules cannot find every form of personal information (names, addresses and spelled-out contacts pass); "
        "review the text before publishing a model trained on it.",
        "",
        "## Split and tokens",
        "",
        f"- split by content hash: {settings['val_fraction']:.0%} of hash buckets to val, so no document is in both",
        f"- tokenizer: {settings['tokenizer']}; tokens: {tokens.get('train', 0):,} train, {tokens.get('val', 0):,} val "
        f"(`train.bin`, `val.bin`, `meta.json`); each document ends with the end-of-text token, or a blank line "
        "for tokenizers without one",
        "",
        "## Files",
        "",
        "`documents.jsonl` (kept text: split, origin, text), `train.bin`/`val.bin`/`meta.json` (token shards), "
        "`tokenizer/`, `stats.json`, `config.json`, this card.",
        "",
    ]
    return "\n".join(parts)
