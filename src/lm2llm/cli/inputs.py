"""One rule for inputs: what a command acts on is positional (`ngram train TEXT`, `reward SFT_RUN`), everything
else an option. The options that named the input before (`--text`, `--model`, `--source`, `--sft`) are kept,
hidden, for one release: they still work and say how to write it now.
"""

from __future__ import annotations

from typing import Any

import typer

from lm2llm.errors import UserError


def old_spelling(flag: str) -> Any:
    """A hidden option that was the input's name before it became the argument."""
    return typer.Option(None, flag, hidden=True, help="Old spelling of the argument (kept for one release).")


def _note(flag: str, name: str) -> None:
    typer.secho(f"note: {flag} is now the argument {name} (write it without {flag}); the old spelling goes "
                "in the next release", err=True, fg="yellow")


def the_input(value: Any, old: Any, name: str, flag: str) -> Any:
    """The positional input, or what its old option gave (with a note); exactly one of the two."""
    if value is not None and old is not None:
        raise UserError(f"{name} given twice: as the argument and as {flag}", where=flag, hint=f"drop {flag}")
    if old is not None:
        _note(flag, name)
        return old
    if value is None:
        raise UserError(f"missing argument {name}", where=name, hint="see --help")
    return value


def the_inputs(values: list | None, old: list | None, name: str, flag: str) -> list:
    """A repeatable positional input joined with what its old repeatable option gave."""
    if old:
        _note(flag, name)
    inputs = [*(values or []), *(old or [])]
    if not inputs:
        raise UserError(f"missing argument {name}", where=name, hint="give at least one; see --help")
    return inputs
