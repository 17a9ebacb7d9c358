"""The downloadable public corpora: where each lives, its checksum and licence, and how its files become
documents. Fetching (cache, mirror, checksum) is `lm2llm.data.download`.

Checksums were computed from byte-identical copies of the upstream files; `None` marks a file of which no
verified copy was at hand (see `download.fetch` for what that means for the user).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from lm2llm.data.download import RemoteFile, fetch
from lm2llm.data.readers import Document, ReadOptions, decode_utf8, read_file
from lm2llm.errors import UserError

GITHUB = "https://raw.githubusercontent.com"


def paragraphs(paths: list[Path], options: ReadOptions) -> Iterator[Document]:
    """Plain text split at blank lines (for a play: one speech per document)."""
    for path in paths:
        text = decode_utf8(path.read_bytes(), str(path), options).replace("\r\n", "\n")
        for number, block in enumerate(text.split("\n\n")):
            yield Document(block, f"{path.name}#{number}")


def column(name: str) -> Callable[[list[Path], ReadOptions], Iterator[Document]]:
    def documents(paths: list[Path], options: ReadOptions) -> Iterator[Document]:
        for path in paths:
            yield from read_file(path, replace(options, text_column=name))  # shares the counts

    return documents


def question_answer(paths: list[Path], options: ReadOptions) -> Iterator[Document]:
    """songys/Chatbot_data: columns Q, A, label; one document per pair."""
    for path in paths:
        rows = csv.DictReader(decode_utf8(path.read_bytes(), str(path), options).splitlines())
        if not {"Q", "A"} <= set(rows.fieldnames or ()):
            raise UserError(f"expected columns Q and A, found {rows.fieldnames}", where=f"{path}:1")
        for row in rows:
            yield Document(f"{row['Q']}\n{row['A']}", f"{path.name}:{rows.line_num}")


def alpaca(paths: list[Path], options: ReadOptions) -> Iterator[Document]:
    """Alpaca-format records {instruction, input, output}: instruction, optional input, then the response."""
    for path in paths:
        try:
            records = json.loads(decode_utf8(path.read_bytes(), str(path), options))
        except json.JSONDecodeError as exc:
            raise UserError(f"malformed JSON: {exc.msg}", where=f"{path}:{exc.lineno}") from exc
        for index, record in enumerate(records):
            if not isinstance(record, dict) or not {"instruction", "output"} <= record.keys():
                raise UserError("not an Alpaca record (needs instruction and output)", where=f"{path}[{index}]")
            parts = [record["instruction"], record.get("input") or "", record["output"]]
            yield Document("\n\n".join(p for p in parts if p), f"{path.name}[{index}]")


@dataclass(frozen=True)
class PublicSet:
    name: str
    description: str
    language: str
    licence: str
    files: tuple[RemoteFile, ...]
    documents: Callable[[list[Path], ReadOptions], Iterator[Document]]

    def read(self, options: ReadOptions) -> Iterator[Document]:
        paths = [fetch(self.name, f, trust_unverified=options.trust_unverified) for f in self.files]
        yield from self.documents(paths, options)


PUBLIC = [
    PublicSet(
        "tinyshakespeare", "Tiny Shakespeare (karpathy/char-rnn), one speech per document", "en",
        "MIT (repository); the text is public domain",
        (RemoteFile(f"{GITHUB}/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                    "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", "input.txt"),),
        paragraphs,
    ),
    PublicSet(
        "nsmc", "Naver movie-review sentiment corpus (e9t/nsmc), 200k Korean reviews", "ko", "CC0-1.0",
        (RemoteFile(f"{GITHUB}/e9t/nsmc/master/ratings_train.txt", None, "ratings_train.tsv"),
         RemoteFile(f"{GITHUB}/e9t/nsmc/master/ratings_test.txt", None, "ratings_test.tsv")),
        column("document"),
    ),
    PublicSet(
        "ko-chatbot", "Korean chatbot Q/A pairs (songys/Chatbot_data), one pair per document", "ko", "MIT",
        (RemoteFile(f"{GITHUB}/songys/Chatbot_data/master/ChatbotData.csv",
                    "287eb129695b577321c80ad397bb3c2279164d4ca577874d129fd3db5b30afe2", "ChatbotData.csv"),),
        question_answer,
    ),
    PublicSet(
        "alpaca", "Stanford Alpaca instruction data (tatsu-lab/stanford_alpaca), 52k records", "en",
        "CC BY-NC 4.0 (non-commercial; generated with OpenAI text-davinci-003)",
        (RemoteFile(f"{GITHUB}/tatsu-lab/stanford_alpaca/main/alpaca_data.json", None, "alpaca_data.json"),),
        alpaca,
    ),
    PublicSet(
        "instruction-data", "Alpaca-format instructions from rasbt/LLMs-from-scratch ch. 7, 1.1k records", "en",
        "Apache-2.0",
        (RemoteFile(f"{GITHUB}/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/instruction-data.json",
                    "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944", "instruction-data.json"),),
        alpaca,
    ),
]
