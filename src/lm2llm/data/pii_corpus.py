"""How `pii_corpus_eval.json` was made (`python -m lm2llm.data.pii_corpus`): the scrubber judged on real text.

The hand-made set (`pii_eval.json`) says how the rules behave on cases someone thought of; this one says
how they behave on the corpora the tour prepares. A looser net than the scrubber's (`CANDIDATES`: anything
around an "@", any dotted quad of numbers, phone- and resident-number-shaped digit runs) is cast over every
python-docs and korean-law document; each distinct string it catches was then labelled by hand in `LABELS`:
the PII type it really is, or None (a placeholder, a Message-ID, a version or section number, a netmask),
and whether it points at a person. Each labelled string's first occurrence is kept with the text around it,
so the scrubber can be scored on the snippets (`pii.evaluate_detector`) without reading the corpora again.
Precision counts what the scrubber replaced that is not of its type (a version string as IPv4); recall is
bounded by the net: PII the loose patterns cannot see is not in the set.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from lm2llm.data.pii import PII_TYPES, TypeScore, find_pii

SOURCES = ("python-docs", "korean-law")
CANDIDATES = re.compile(r"[^\s<>()\[\]\"',;:`]+@[^\s<>()\[\]\"',;:`]*[^\s<>()\[\]\"',;:`.]"
                        r"|(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d])"
                        r"|(?<![\d.-])\+?\(?\d{2,4}\)?[- .]\d{3,4}[- .]\d{4}(?!\d)|(?<![\d.-])\d{6}-\d{7}(?!\d)")
CONTEXT = 60  # characters kept on each side of a candidate

_EXAMPLE = "an example address in a code sample"
_PERSON = "a named person's address"
# string → (its real PII type or None, whether it identifies a person, why)
LABELS: dict[str, tuple[str | None, bool, str]] = {
    "142480216486.20800.16526388040877946887@nightshade.la.mastaler.com": (None, False, "an RFC 2822 Message-ID"),
    "Me@my.org": ("EMAIL", False, _EXAMPLE), "me@my.org": ("EMAIL", False, _EXAMPLE),
    "one@one.org": ("EMAIL", False, _EXAMPLE), "two@two.org": ("EMAIL", False, _EXAMPLE),
    "three@three.org": ("EMAIL", False, _EXAMPLE), "four@four.org": ("EMAIL", False, _EXAMPLE),
    "somebody@here.my.org": ("EMAIL", False, _EXAMPLE),
    "someone@here": (None, False, "a placeholder without a domain"),
    "username@domain": (None, False, "a placeholder without a domain"),
    "brian@sweetapp.com": ("EMAIL", True, _PERSON), "fdrake@acm.org": ("EMAIL", True, _PERSON),
    "gh@ghaering.de": ("EMAIL", True, _PERSON), "gward@python.net": ("EMAIL", True, _PERSON),
    "lkcl@samba.org": ("EMAIL", True, _PERSON), "mal@lemburg.com": ("EMAIL", True, _PERSON),
    "mhammond@skippinet.com.au": ("EMAIL", True, _PERSON), "sjoerd@acm.org": ("EMAIL", True, _PERSON),
    "optik-users@lists.sourceforge.net": ("EMAIL", False, "a mailing list"),
    "sendmail-bugs@sendmail.org": ("EMAIL", False, "a project's bug address"),
    "tanzania@assembly.go.kr": ("EMAIL", True, "a named official's work address"),
    "02-788-4649": ("PHONE", True, "a named official's work number"),
    "0.0.0.0": ("IPV4", False, "the unspecified address"),
    "127.0.0.1": ("IPV4", False, "the loopback address"),
    "123.45.67.89": ("IPV4", False, "an example address"),
    **{f"192.0.2.{n}": ("IPV4", False, "an address of the documentation range (RFC 5737)")
       for n in (0, 1, 2, 4, 8, 32, 64, 128, 130, 192)},
    "255.255.255.0": (None, False, "a netmask"), "255.255.255.224": (None, False, "a netmask"),
    "255.0.0.0": (None, False, "a netmask"), "255.255.255.255": (None, False, "a netmask after a slash"),
    "0.0.0.255": (None, False, "a hostmask"), "0.0.0.31": (None, False, "a hostmask"),
    "0.255.255.255": (None, False, "a hostmask"),
    "1.0.0.127": (None, False, "the reversed octets of an in-addr.arpa name"),
    "1.0.0.0": (None, False, "the start of an ip6.arpa name"),
    "2.7.2.2": (None, False, "a version number"), "3.1.1.6": (None, False, "a version number"),
    "7.1.4.34": (None, False, "a fileset version number"),
}


def snippets(documents: dict[str, list[str]]) -> list[dict]:
    """One example per labelled string (its first occurrence), in `pii_eval.json`'s form plus the source,
    the labels of every labelled string inside the snippet, and who it points at."""
    out, seen = [], set()
    for source, texts in documents.items():
        for text in texts:
            for match in CANDIDATES.finditer(text):
                value = match.group().strip("(")
                if value in seen:
                    continue
                if value not in LABELS:
                    raise KeyError(f"{source}: {value!r} caught by the net but not labelled")
                seen.add(value)
                start, end = max(0, match.start() - CONTEXT), min(len(text), match.end() + CONTEXT)
                snippet = " ".join(text[start:end].split())
                gold = [[LABELS[v][0], v] for v in LABELS if LABELS[v][0] and re.search(
                    rf"(?<![\w.@-]){re.escape(v)}(?![\w@-]|\.\d)", snippet)]
                out.append({"lang": "ko" if source == "korean-law" else "en", "source": source, "text": snippet,
                            "pii": gold, "candidate": value, "personal": LABELS[value][1], "why": LABELS[value][2]})
    return out


def corpus_examples() -> list[dict]:
    return json.loads(resources.files("lm2llm.data").joinpath("pii_corpus_eval.json").read_text(encoding="utf-8"))


def score_candidates(examples: list[dict] | None = None) -> tuple[dict[str, TypeScore], dict[str, int]]:
    """Per-type scores counting each labelled string once (snippets overlap, so `evaluate_detector` on them
    would count a string several times): a true positive when the scrubber replaces it as its real type, a
    false positive when it replaces it as another type (or it is no PII), a false negative when PII is left.
    Also how many of the true positives point at a person."""
    scores = {kind: TypeScore() for kind in PII_TYPES}
    personal = {"found": 0, "labelled": 0}
    for example in examples if examples is not None else corpus_examples():
        value = example["candidate"]
        gold = next((kind for kind, v in example["pii"] if v == value), None)
        found = next((m.type for m in find_pii(example["text"]) if m.value == value), None)
        if found is not None and found == gold:
            scores[found].true_positives += 1
            personal["found"] += example["personal"]
        elif found is not None:
            scores[found].false_positives += 1
        if gold is not None and found != gold:
            scores[gold].false_negatives += 1
        personal["labelled"] += example["personal"]
    return scores, personal


def build(path: Path | None = None) -> None:
    from lm2llm.data import load_documents

    path = path or Path(__file__).with_name("pii_corpus_eval.json")
    rows = snippets({source: load_documents(source) for source in SOURCES})
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    build()
