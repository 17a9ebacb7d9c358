"""Shared output helpers: every command that reports figures prints a rich table or, with --json, JSON."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lm2llm.runs import to_jsonable

console = Console()

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
FORCE_OPTION = typer.Option(False, "--force", help="Replace --out if it holds lm2llm's own earlier output of this kind.")


def group(help: str) -> typer.Typer:
    """A command group (`lm2llm ngram ...`) with literal help, like the root's (`lm2llm.cli`)."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False))


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """Two columns, printed literally: a value such as "[model]" or "[CLS]" is text, not rich markup."""
    table = Table(title=escape(title), show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in rows:
        table.add_row(escape(str(key)), escape(str(value)))
    console.print(table)
