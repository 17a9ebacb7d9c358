"""`lm2llm generate RUN --prompt ...` and `lm2llm chat RUN`: text from a trained run, in one shot or a chat."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from lm2llm.cli.output import JSON_OPTION, print_json
from lm2llm.cli.safety import SAFETY_FILTER
from lm2llm.errors import UserError

if TYPE_CHECKING:  # the engine imports torch: loaded inside the commands, so --help stays fast
    from lm2llm.inference.sampling import SamplingConfig

RUN_ARGUMENT = typer.Argument(..., help="A run directory: model.safetensors, model_config.json and tokenizer files.")
MAX_NEW_TOKENS = typer.Option(128, "--max-new-tokens", "-n", help="Generate at most this many tokens.")
TEMPERATURE = typer.Option(1.0, "--temperature", "-t", help="Sharpen (<1) or flatten (>1) the distribution; 0 is greedy.")
TOP_K = typer.Option(0, "--top-k", help="Sample among the k most likely tokens (0: all).")
TOP_P = typer.Option(1.0, "--top-p", help="Sample from the smallest set of tokens holding this probability (1: all).")
MIN_P = typer.Option(0.0, "--min-p", help="Drop tokens less likely than min-p × the most likely one (0: none).")
REPETITION = typer.Option(1.0, "--repetition-penalty", help="Divide logits of tokens already seen (1: off).")
FREQUENCY = typer.Option(0.0, "--frequency-penalty", help="Subtract this per earlier use of a token (OpenAI's).")
PRESENCE = typer.Option(0.0, "--presence-penalty", help="Subtract this once for a token already used (OpenAI's).")
STOP = typer.Option([], "--stop", help="End before this string (repeatable).")
SEED = typer.Option(None, "--seed", help="Fix the random choices: same seed, same text.")
DEVICE = typer.Option("cpu", "--device", help="cpu, cuda, or auto (a GPU when there is one).")
QUANTIZE = typer.Option(None, "--quantize", help="int8 or int4: weight-only quantized linear layers (CPU; "
                        "a quarter or an eighth of the bytes read per token); w8a8 or w4a8: int8 or int4 weights "
                        "met by int8 inputs, as llama.cpp runs Q8_0 and Q4_0.")
DTYPE = typer.Option("float32", "--dtype", help="float32, bfloat16 (faster batches on CPUs with native bf16) or float16.")
SHOW_SPECIAL = typer.Option(False, "--show-special", help="Print special tokens such as <|end|> or <|im_end|> in "
                            "the text (left out by default; generation stops at end-of-text and end-of-turn).")


def sampling_config(max_new_tokens: int, temperature: float, top_k: int, top_p: float, min_p: float,
                    repetition_penalty: float, frequency_penalty: float, presence_penalty: float,
                    stop: list[str], seed: int | None, top_logprobs: int = 0) -> SamplingConfig:
    from lm2llm.inference.sampling import SamplingConfig

    return SamplingConfig(
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
        repetition_penalty=repetition_penalty, frequency_penalty=frequency_penalty,
        presence_penalty=presence_penalty, stop=tuple(stop), seed=seed, logprobs=top_logprobs > 0,
        top_logprobs=top_logprobs,
    )


def generate_command(
    run: str = RUN_ARGUMENT,
    prompt: list[str] = typer.Option(..., "--prompt", "-p", help="Text to continue (repeat for a batch)."),
    max_new_tokens: int = MAX_NEW_TOKENS, temperature: float = TEMPERATURE, top_k: int = TOP_K,
    top_p: float = TOP_P, min_p: float = MIN_P, repetition_penalty: float = REPETITION,
    frequency_penalty: float = FREQUENCY, presence_penalty: float = PRESENCE, stop: list[str] = STOP,
    seed: int | None = SEED, device: str = DEVICE, dtype: str = DTYPE, quantize: str | None = QUANTIZE,
    top_logprobs: int = typer.Option(0, "--logprobs", help="Report log-probabilities with this many alternatives."),
    stream: bool = typer.Option(False, "--stream", help="Print text as it is generated."),
    show_special: bool = SHOW_SPECIAL,
    json_out: bool = JSON_OPTION, safety_filter: str | None = SAFETY_FILTER,
) -> None:
    """Continue one prompt or a batch of prompts (generated together, left-padded, with a KV cache)."""
    config = sampling_config(max_new_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                             frequency_penalty, presence_penalty, stop, seed, top_logprobs)
    from lm2llm.inference.text import TextGenerator
    from lm2llm.safety.guard import guard_generator

    generator = guard_generator(TextGenerator.from_run(run, device, dtype, quantize, show_special=show_special),
                                safety_filter)
    if stream:
        if len(prompt) > 1 and not json_out:
            raise UserError("--stream prints one prompt's text; give one --prompt", where="--stream",
                            hint="or add --json for one JSON line per piece, tagged with its prompt index")
        if not json_out:
            typer.echo(prompt[0], nl=False)
        for chunk in generator.stream(prompt, config):
            if json_out:
                typer.echo(json.dumps(asdict(chunk), ensure_ascii=False))
            else:
                typer.echo(chunk.text, nl=False)
        if not json_out:
            typer.echo()
        return
    start = time.perf_counter()
    completions = generator.generate(prompt, config)
    seconds = time.perf_counter() - start
    if json_out:
        tokens = sum(len(c.token_ids) for c in completions)
        print_json({"completions": [{"prompt": p, **asdict(c)} for p, c in zip(prompt, completions, strict=True)],
                    "seconds": seconds, "tokens_per_second": tokens / seconds if seconds else None})
        return
    for index, (text, completion) in enumerate(zip(prompt, completions, strict=True)):
        if len(prompt) > 1:
            typer.secho(f"[{index}] {completion.finish_reason}", fg="cyan", err=True)
        typer.echo(text + completion.text)


def chat_command(
    run: str = RUN_ARGUMENT,
    system: str = typer.Option("", "--system", help="System prompt for the conversation."),
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = typer.Option(0.7, "--temperature", "-t", help=TEMPERATURE.help),
    top_k: int = TOP_K, top_p: float = typer.Option(0.9, "--top-p", help=TOP_P.help), min_p: float = MIN_P,
    repetition_penalty: float = REPETITION, frequency_penalty: float = FREQUENCY,
    presence_penalty: float = PRESENCE, stop: list[str] = STOP, seed: int | None = SEED, device: str = DEVICE,
    dtype: str = DTYPE, quantize: str | None = QUANTIZE, show_special: bool = SHOW_SPECIAL,
    safety_filter: str | None = SAFETY_FILTER,
) -> None:
    """Talk to a chat-tuned run in the terminal. /reset clears the history, /system TEXT sets the system
    prompt, /quit (or Ctrl-D) leaves."""
    config = sampling_config(max_new_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                             frequency_penalty, presence_penalty, stop, seed)
    from lm2llm.inference.chat import ChatSession
    from lm2llm.inference.text import TextGenerator
    from lm2llm.safety.guard import guard_chat

    session = guard_chat(ChatSession(TextGenerator.from_run(run, device, dtype, quantize, show_special=show_special),
                                     system=system or None), safety_filter)
    typer.secho("/reset: new conversation · /system TEXT: set the system prompt · /quit: leave", fg="cyan", err=True)
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            typer.echo()
            return
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return
        if line == "/reset":
            session.reset()
            typer.secho("(conversation cleared)", fg="cyan", err=True)
            continue
        if line == "/system" or line.startswith("/system "):
            session.set_system(line[len("/system"):].strip())
            typer.secho(f"(system prompt: {session.system or 'none'})", fg="cyan", err=True)
            continue
        try:
            for piece in session.reply(line, config):
                typer.echo(piece, nl=False)
        except UserError as error:
            typer.secho(f"error: {error}", fg="red", err=True)
            continue
        except KeyboardInterrupt:  # Ctrl-C stops the answer, not the chat
            typer.secho(" (stopped)", fg="cyan", err=True)
            continue
        typer.echo()


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
    app.command("chat")(chat_command)
