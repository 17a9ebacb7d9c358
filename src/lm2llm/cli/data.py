"""`lm2llm data`: list the corpora, prepare one into cleaned text and token shards, and show its statistics."""

from __future__ import annotations

import typer

from lm2llm import data as data_api
from lm2llm.cli.output import JSON_OPTION, console, print_json


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Corpora: list, prepare (clean, dedup, scrub, filter, split, tokenize), stats.",
                           no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("sources")
    def sources_command(json_out: bool = JSON_OPTION) -> None:
        """The registered corpora, their language and licence (any local file, folder or glob works too)."""
        sources = data_api.list_sources()
        if json_out:
            print_json([{k: getattr(s, k) for k in ("name", "kind", "language", "licence", "description")}
                        for s in sources])
            return
        from rich.table import Table

        table = Table(title="lm2llm data sources")
        for column in ("name", "kind", "language", "licence", "description"):
            table.add_column(column)
        for s in sources:
            table.add_row(s.name, s.kind, s.language, s.licence, s.description)
        console.print(table)
