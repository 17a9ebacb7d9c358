"""README.ko.md matches README.md section by section: the same headings at the same levels in the same order,
and in each section the same number of code blocks, the same commands in them, the same number of table
rows and the same commands named in its text. Prose is translated; structure and commands are not."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Section:
    level: int
    number: str  # "4.3" for a numbered section of the guide, "" otherwise
    code_blocks: int = 0
    commands: list[str] = field(default_factory=list)  # command lines in code blocks, comments cut
    table_rows: int = 0
    prose: list[str] = field(default_factory=list)  # lines outside code blocks and tables


def sections(readme: str) -> list[Section]:
    found: list[Section] = []
    fenced = False
    for line in (ROOT / readme).read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
            found[-1].code_blocks += fenced
        elif fenced:
            command = line.split(" #")[0].strip()
            if command and found:
                found[-1].commands.append(command)
        elif heading := re.match(r"(#+) (\S+)", line):
            number = heading[2] if re.fullmatch(r"\d+(\.\d+)?", heading[2]) else ""
            found.append(Section(len(heading[1]), number))
        elif line.startswith("|") and line.rstrip().endswith("|") and not re.match(r"\|\s*-", line):
            found[-1].table_rows += 1
        elif found:
            found[-1].prose.append(line)
    assert not fenced, f"{readme}: a code block is not closed"
    return found


def test_korean_readme_matches_the_english_one_section_by_section():
    english, korean = sections("README.md"), sections("README.ko.md")
    assert [(s.level, s.number) for s in korean] == [(s.level, s.number) for s in english], \
        "README.ko.md needs the same headings, at the same levels, in the same order as README.md"
    for index, (en, ko) in enumerate(zip(english, korean, strict=True)):
        where = f"section {index} ({en.number or 'heading level ' + str(en.level)})"
        assert ko.code_blocks == en.code_blocks, f"{where}: code blocks differ"
        assert ko.commands == en.commands, f"{where}: the commands in its code blocks differ"
        assert ko.table_rows == en.table_rows, f"{where}: table rows differ"
        assert inline_commands(ko) == inline_commands(en), f"{where}: the commands its text names differ"


def inline_commands(section: Section) -> list[str]:
    """The `lm2llm ...` spans of a section's prose (a span may wrap), in sorted order: a translation may
    reorder sentences."""
    return sorted(" ".join(span.split()) for span in re.findall(r"`(lm2llm [^`]*)`", "\n".join(section.prose)))
