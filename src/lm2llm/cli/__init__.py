"""The `lm2llm` command line: thin wrappers that parse arguments and call the package API.

Each stage lives in its own module here and defines `register(app)`; modules are found automatically.
User mistakes (`UserError`, bad flags, unreadable or malformed files: `input_error`) print one line and exit 2;
`--debug` shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

from lm2llm import __version__
from lm2llm.errors import UserError

app = typer.Typer(
    name="lm2llm",
    help="From n-grams to LLMs: build, train, measure and compare language models on a laptop CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lm2llm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    if debug:
        os.environ["LM2LLM_DEBUG"] = "1"


# Every module in this package that defines `register(app)` is a stage; no central list to edit.
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    if hasattr(_module, "register"):
        _module.register(app)


def _fail(message: str) -> int:
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg="red")  # one line, whatever the message held
    return 2


def input_error(exc: BaseException) -> str | None:
    """The one-line report of an error caused by the user's files or disk rather than by lm2llm, or None.

    Operating-system errors (a missing or unreadable file, a read-only folder, a full disk), malformed
    JSON, CSV or safetensors, and input nested too deeply to parse all land here when a reader did not
    already turn them into a `UserError` naming the field.
    """
    import csv
    import json

    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if isinstance(exc, csv.Error):
        return f"malformed CSV: {exc}"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to read"
    if isinstance(exc, UnicodeDecodeError):
        return f"the input is not UTF-8 text (byte {exc.start})"
    if type(exc).__name__ == "SafetensorError":
        return f"not a valid safetensors file: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) the process status."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("LM2LLM_DEBUG") == "1"
    try:
        app(args=args, prog_name="lm2llm", standalone_mode=False)
        status = 0
    except typer.Exit as exc:
        status = exc.exit_code
    except typer.Abort:
        status = _fail("aborted")
    except typer.TyperException as exc:  # click's usage errors, as vendored by typer
        if debug:
            raise
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        status = _fail(f"{message}{where}")
    except UserError as exc:
        if debug:
            raise
        status = _fail(str(exc))
    except KeyboardInterrupt:
        status = _fail("interrupted")
    except Exception as exc:  # a bug keeps its traceback; bad files and disks get one line
        message = input_error(exc)
        if debug or message is None:
            raise
        status = _fail(message)
    if argv is None:
        sys.exit(status)
    return status
