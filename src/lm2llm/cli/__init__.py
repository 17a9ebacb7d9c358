"""The `lm2llm` command line: thin wrappers that parse arguments and call the package API.

Each stage lives in its own module here and defines its commands as module-level functions plus
`register(app)`; modules are found automatically and listed in the journey's order (`JOURNEY`).
One rule for inputs: what a command acts on is positional, everything else an option.
Help renders literally (no rich markup: "[model]" stays, no `<bool>` metavars).
User mistakes (`UserError`, bad flags, unreadable or malformed files: `input_error`) print one line and exit 2;
`--debug` shows the traceback; `--verbose` shows the libraries' own output (`lm2llm.quiet`).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys

import typer
from typer.core import TyperGroup

from lm2llm import __version__
from lm2llm.allocator import keep_freed_memory
from lm2llm.errors import UserError
from lm2llm.quiet import set_verbose

# The commands in the order a learner meets them: data and tokenizers, n-grams, pre-training, fine-tuning
# and alignment, running a model, evaluating it, prompting and RAG, looking inside it, compressing it.
# `lm2llm --help` lists them in this order; a command not named here comes last.
JOURNEY = ("env", "data", "tokenizer", "ngram", "train", "classify", "params", "scale", "sft", "reward", "dpo",
           "ppo", "models", "import-gguf", "import-hf", "export-hf", "embed", "generate", "chat", "serve", "eval",
           "lm-eval", "select", "prompt", "rag", "bias", "interpret", "safety", "compress", "export-gguf", "tour")


def _metavar(label: str) -> str:
    """`<list[str]>` reads like a Python list is wanted and `<int range>` repeats the range shown after the
    help; a repeatable option takes one value each time."""
    return re.sub(r"list\[(.*)\]", r"\1", label).replace(" range", "")


class LiteralGroup(TyperGroup):
    """The root group: commands in the journey's order, plain metavars on every option below it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        commands = list(self.commands.values())
        while commands:
            command = commands.pop()
            commands += getattr(command, "commands", {}).values()
            for param in command.params:
                label = param.display_type(None)
                if param.param_type_name == "argument":
                    param.metavar = param.metavar or param.name.upper()  # `generate RUN`, as the README writes
                    param.display_type_rich = lambda ctx, plain=_metavar(label): plain  # its type column
                elif param.metavar is None and not param.is_flag and label != _metavar(label):
                    param.metavar = _metavar(label)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            if hasattr(exc, "possibilities") and exc.ctx is not None:  # click's NoSuchOption, as typer vendors it
                exc.message = f"{exc.message}{unknown_option_hint(exc.ctx.command, exc.option_name)}"
                exc.possibilities = None
            raise

    def list_commands(self, ctx) -> list[str]:
        return sorted(self.commands, key=lambda name: (JOURNEY.index(name) if name in JOURNEY else len(JOURNEY), name))


def unknown_option_hint(command, flag: str) -> str:
    """'; did you mean --max-steps?' for a misspelled option (never a hidden old spelling), plus what the
    command adds (`train`: the `--set key=value` route)."""
    import difflib

    options = [o for p in command.params if not getattr(p, "hidden", False) for o in p.opts if o.startswith("--")]
    close = difflib.get_close_matches(flag, options, n=1, cutoff=0.75)
    hints = [f"did you mean {close[0]}?"] if close else []
    hints += [command.unknown_option_hint(flag)] if hasattr(command, "unknown_option_hint") else []
    return f"; {' '.join(hints)}" if hints else ""


app = typer.Typer(
    name="lm2llm",
    help="From n-grams to LLMs: build, train, measure and compare language models on a laptop CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=LiteralGroup,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lm2llm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", help="Show the libraries' own output (progress bars, "
                                 "warnings, KenLM's notes), silenced by default."),
) -> None:
    if debug:
        os.environ["LM2LLM_DEBUG"] = "1"
    set_verbose(verbose)
    keep_freed_memory()


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
        if type(exc).__name__ == "NoArgsIsHelpError":  # `lm2llm` or `lm2llm ngram` alone: the help, as is
            exc.show()
            return _exit(2, argv)
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
    return _exit(status, argv)


def _exit(status: int, argv: list[str] | None) -> int:
    if argv is None:
        sys.exit(status)
    return status
