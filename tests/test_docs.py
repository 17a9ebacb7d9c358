"""The docs stay true to the tree: every CLI command is in both READMEs' tables, both READMEs have the same
sections, and docs/architecture.md describes every package folder and names only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

import lm2llm
from lm2llm.cli import app

PACKAGE = Path(lm2llm.__file__).resolve().parent
ROOT = PACKAGE.parent.parent
READMES = ("README.md", "README.ko.md")


def command_paths() -> list[str]:
    """`lm2llm` command lines as typed: 'env', 'data prepare', ..."""
    root = typer.main.get_command(app)
    paths = []
    for name, command in root.commands.items():
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            paths += [f"{name} {sub}" for sub in command.commands]
        else:
            paths.append(name)
    return sorted(paths)


def table_rows(readme: str) -> list[str]:
    """The first `lm2llm ...` code span of each table row."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    return re.findall(r"^\|[^`\n]*`lm2llm ([^`]*)`", text, re.M)


@pytest.mark.parametrize("readme", READMES)
def test_every_command_is_in_the_readme_table(readme):
    rows = table_rows(readme)
    missing = [path for path in command_paths() if not any(re.match(rf"{re.escape(path)}( |$)", row) for row in rows)]
    assert not missing, f"{readme}: add these commands to the table: {missing}"


def test_both_readmes_have_the_same_sections_and_commands():
    def numbered(readme: str) -> list[str]:
        headings = re.findall(r"^## (.*)$", (ROOT / readme).read_text(encoding="utf-8"), re.M)
        return [h.split()[0] if h[0].isdigit() else "" for h in headings]

    english, korean = (numbered(r) for r in READMES)
    assert english == korean, "README.md and README.ko.md must keep the same sections in the same order"
    english, korean = ([" ".join(row.split()[:2]) for row in table_rows(r)] for r in READMES)
    assert english == korean, "README.md and README.ko.md must list the same commands in the same order"


def test_architecture_describes_every_package_and_names_real_modules():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    folders = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    undocumented = [f for f in folders if f"`lm2llm/{f}/`" not in text]
    assert not undocumented, f"docs/architecture.md: describe these package folders: {undocumented}"
    named = re.findall(r"`lm2llm/([\w/]+\.py)`", text)
    for row in re.findall(r"^\| `lm2llm/([\w/]+)/` \| (.*)$", text, re.M):
        folder, cells = row
        named += [module.removeprefix("lm2llm/") if module.startswith("lm2llm/") else f"{folder}/{module}"
                  for module in re.findall(r"`([\w/]+\.py)`", cells)]
    missing = sorted({m for m in named if not (PACKAGE / m).is_file()})
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def guide_map() -> list[list[str]]:
    """The rows of the guide → code map in docs/architecture.md, each a list of its five cells."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Guide → code map", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # without the header


def test_the_guide_map_names_real_files_commands_and_every_chapter():
    rows = guide_map()
    assert rows and all(len(row) == 5 for row in rows), "each map row has: § | modules | chapter | tests | CLI"
    commands = set(command_paths())
    tests = ROOT / "tests"
    wrong = []
    for section, modules, chapter, test_files, cli_cells in rows:
        wrong += [f"{section}: module {m}" for m in re.findall(r"`([\w/.]+)`", modules) if not (PACKAGE / m).exists()]
        wrong += [f"{section}: chapter {c}" for c in re.findall(r"`([\w.]+)`", chapter)
                  if not (PACKAGE / "tour" / "chapters" / c).is_file()]
        wrong += [f"{section}: test {t}" for t in re.findall(r"`([\w.]+)`", test_files) if not (tests / t).is_file()]
        wrong += [f"{section}: command {c}" for c in re.findall(r"`lm2llm ([^`]+)`", cli_cells) if c not in commands]
    assert not wrong, f"docs/architecture.md's guide → code map names what does not exist: {wrong}"
    chapters = {p.name for p in (PACKAGE / "tour" / "chapters").glob("ch*.py")}
    mapped = {c for row in rows for c in re.findall(r"`([\w.]+)`", row[2])}
    assert chapters <= mapped, f"add these tour chapters to the guide → code map: {sorted(chapters - mapped)}"
    sections = re.findall(r"^## (\d[\d.]*) ", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    assert [row[0].split()[0] for row in rows] == sections, \
        "the guide → code map has one row per numbered README section, in the same order"
