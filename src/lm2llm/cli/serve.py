"""`lm2llm serve RUN`: an OpenAI-compatible API and a web chat page for a trained run."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.generate import QUANTIZE
from lm2llm.cli.safety import SAFETY_FILTER
from lm2llm.errors import UserError
from lm2llm.serve.hosts import is_loopback


def serve_command(
    run: str = typer.Argument(..., help="A run directory: model.safetensors, model_config.json and tokenizer files."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback keeps it on this machine)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="LM2LLM_API_KEY",
                                       help="Require 'Authorization: Bearer KEY' on /v1 routes."),
    max_batch: int = typer.Option(16, "--max-batch", help="Sequences decoded together in one step."),
    max_waiting: int = typer.Option(256, "--max-waiting", help="Sequences that may wait; beyond, HTTP 429."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps, or auto (a GPU when there is one)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16: bfloat16 decodes batches "
                              "faster on CPUs with native bf16, single requests possibly slower."),
    prefill_dtype: str | None = typer.Option(
        None, "--prefill-dtype", help="Run prompts in this dtype (e.g. bfloat16) on a copy of the weights, "
        "decoding in --dtype: prompts are matmul-bound, and native bf16 matmuls are several times faster."),
    quantize: str | None = QUANTIZE,
    rag: Path | None = typer.Option(None, "--rag", help="An index from 'lm2llm rag index': chat answers cite "
                                    "its passages; responses carry passages, citations and groundedness."),
    rag_k: int = typer.Option(5, "--rag-k", min=1, max=20, help="Passages retrieved per question with --rag."),
    threads: int = typer.Option(1, "--threads", help="torch threads for the model (0: torch's default). One "
                                "suits small models: a decode step is too small to share between cores."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="The most new tokens of any sequence, for "
                                          "every request (default: the model's context; required for RNNs)."),
    allowed_host: list[str] = typer.Option(None, "--allowed-host", help="A Host name clients use to reach the "
                                           "server; repeatable; '*' for any (default: loopback names and --host)."),
    drain_seconds: float = typer.Option(30.0, "--drain-seconds", min=0.0, help="On SIGTERM, how long running "
                                        "requests may take to finish before they are answered 503."),
    safety_filter: str | None = SAFETY_FILTER,
) -> None:
    """Serve RUN over HTTP: /v1/completions, /v1/chat/completions (streaming), /v1/models, /health, and a
    chat page at /. Concurrent requests are decoded together (continuous batching)."""
    import torch

    from lm2llm.serve.app import (
        ServedModel,
        bind_socket,
        create_app,
        default_allowed_hosts,
        uvicorn_server,
    )

    if not 0 < port < 65536:
        raise UserError(f"port must be in 1..65535, got {port}", where="--port")
    if threads < 0:
        raise UserError("threads must be >= 0", where="--threads")
    if threads:
        torch.set_num_threads(threads)
    retrieval = None
    if rag is not None:
        from lm2llm.rag.index import RagIndex
        from lm2llm.serve.retrieval import Retrieval

        index = RagIndex.load(rag)
        retrieval = Retrieval(index, rag_k, "hybrid" if index.embeddings is not None else "bm25")
    served = ServedModel.from_run(run, max_batch=max_batch, max_waiting=max_waiting, device=device,
                                 dtype=dtype, prefill_dtype=prefill_dtype, max_tokens=max_tokens,
                                 quantize=quantize)
    sock = bind_socket(host, port)
    if not is_loopback(host) and not api_key:
        typer.secho(f"warning: listening on {host} without --api-key: anyone who reaches this machine can "
                    "use the model", fg="yellow", err=True)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    typer.secho(f"serving {served.model_id} at {where}/v1 (chat page: {where}/)", fg="cyan", err=True)
    from lm2llm.safety.guard import guard_app

    app = guard_app(create_app(served, api_key=api_key, allowed_hosts=allowed_host or default_allowed_hosts(host),
                               retrieval=retrieval), safety_filter)
    uvicorn_server(app, drain_seconds=drain_seconds).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
