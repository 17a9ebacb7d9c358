"""Serving throughput and latency: `lm2llm serve` (its own process) under 1, 4 and 8 concurrent HTTP clients,
with continuous batching vs the same server decoding one sequence at a time (`--max-batch 1`, the peer).

Goal of issue 12: at 8 clients, batched throughput (completion tokens/s) >= 4x a single client's.
The same batched server with bf16 weights (`--dtype bfloat16`) is measured too: a CPU with native bf16
reads half the bytes per decoding step, which pays off for batches more than for one sequence. So is the
fp32 server whose prompts run on a bf16 copy of the weights (`--prefill-dtype bfloat16`): prefill is
matmul-bound, and it is what eight clients spend more of their time on than one.

`--device cuda` serves on a GPU (results/serve_cuda.json); `--modes batched,one_at_a_time` and
`--clients 1,4,8,16` shorten or widen a run. The one-at-a-time peer at many clients is the slow part.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, write_result  # noqa: E402

from lm2llm.data import load_documents  # noqa: E402
from lm2llm.serve.app import bind_socket  # noqa: E402
from lm2llm.serve.demo import save_demo_run  # noqa: E402
from lm2llm.serve.loadgen import run_load  # noqa: E402
from lm2llm.tokenizer import load_tokenizer  # noqa: E402

CLIENTS = (1, 4, 8)
# (name, --max-batch, --dtype, --prefill-dtype): continuous batching, the one-at-a-time peer, batching with
# bf16 weights, and batching with fp32 decoding but prompts prefilled by a bf16 copy of the weights
MODES = (("batched", 16, "float32", None), ("one_at_a_time", 1, "float32", None),
         ("batched_bf16", 16, "bfloat16", None), ("batched_bf16_prefill", 16, "float32", "bfloat16"))
PER_CLIENT = 8  # requests per client: the ramp-down at the end, when fewer clients remain, weighs less
REPEATS = 2
MAX_TOKENS = 64
LONG_PROMPT = 200  # tokens: a prompt with retrieved context or chat history, for the time to first token
MODEL = dict(family="llama", context_length=256, n_layer=6, d_model=384, n_head=6, n_kv_head=2)


def free_port() -> int:
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return port


def serve(run_dir: Path, max_batch: int, dtype: str = "float32", prefill_dtype: str | None = None,
          device: str = "cpu") -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    prefill = ["--prefill-dtype", prefill_dtype] if prefill_dtype else []
    process = subprocess.Popen([sys.executable, "-m", "lm2llm", "serve", str(run_dir), "--port", str(port),
                                "--max-batch", str(max_batch), "--dtype", dtype, "--device", device, *prefill],
                               env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def health(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url + "/health", timeout=10).read())


def measure(url: str, body, clients: int) -> dict:
    """One load level, run REPEATS times; the fastest run (the least disturbed by other work on the machine),
    with the server's mean batch size over it (from /health's step counters)."""
    runs = []
    for _ in range(REPEATS):
        before = health(url)
        summary = run_load(url, body, clients=clients, requests=clients * PER_CLIENT).summary()
        after = health(url)
        steps = after["steps"] - before["steps"]
        rows = after["mean_batch"] * after["steps"] - before["mean_batch"] * before["steps"]
        runs.append({**summary, "mean_rows_per_step": round(rows / steps, 2) if steps else 0.0})
    return max(runs, key=lambda run: run["tokens_per_second"])


def scheduler_only(run_dir: Path, prompts: list[str], device: str) -> dict[str, float]:
    """Tokens/s of the scheduler alone (no HTTP, same process) with 1 and 8 sequences at once: what
    batching gives before the web server and the clients take their share of the CPU."""
    import queue

    import torch

    from lm2llm.inference.engine import SequenceRequest
    from lm2llm.inference.sampling import SamplingConfig
    from lm2llm.serve.app import ServedModel

    torch.set_num_threads(1)
    served = ServedModel.from_run(run_dir, device=device)
    served.scheduler.start()
    rates = {}
    try:
        for batch in (1, 8, 1, 8):  # twice each; the better run is the less disturbed one
            out: queue.Queue = queue.Queue()
            start = time.perf_counter()
            served.scheduler.submit([SequenceRequest(served.tokenizer.encode(prompts[i]),
                                                     SamplingConfig(max_new_tokens=MAX_TOKENS, seed=i), out.put, index=i)
                                     for i in range(batch)])
            finished = tokens = 0
            while finished < batch:
                chunk = out.get()
                finished += chunk.finish_reason is not None
                tokens += len(chunk.token_ids)
            rates[str(batch)] = max(rates.get(str(batch), 0.0), tokens / (time.perf_counter() - start))
    finally:
        served.scheduler.stop()
    return rates


def time_to_first_token(run_dir: Path, prompt_ids: list[int], device: str, rounds: int = 8) -> dict[str, float]:
    """Milliseconds from submitting one long prompt to its first token (best of `rounds`, alternating), for the
    fp32 scheduler and for the same one prefilling with a bf16 copy of the weights: prefill alone, no HTTP."""
    import queue

    import torch

    from lm2llm.inference.engine import SequenceRequest
    from lm2llm.inference.sampling import SamplingConfig
    from lm2llm.serve.app import ServedModel

    torch.set_num_threads(1)
    servers = {"float32": ServedModel.from_run(run_dir, device=device),
               "bfloat16_prefill": ServedModel.from_run(run_dir, device=device, prefill_dtype="bfloat16")}
    best = dict.fromkeys(servers, float("inf"))
    for served in servers.values():
        served.scheduler.start()
    try:
        for _ in range(rounds):
            for name, served in servers.items():
                out: queue.Queue = queue.Queue()
                start = time.perf_counter()
                served.scheduler.submit([SequenceRequest(prompt_ids, SamplingConfig(max_new_tokens=1), out.put)])
                while out.get().finish_reason is None:
                    pass
                best[name] = min(best[name], 1000 * (time.perf_counter() - start))
    finally:
        for served in servers.values():
            served.scheduler.stop()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="where the server runs: cpu (results/serve.json) or cuda "
                        "(results/serve_cuda.json)")
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="load levels, comma-separated; "
                        "1 and 8 are needed for the goal's ratio")
    parser.add_argument("--modes", default=",".join(m[0] for m in MODES), help="server modes to measure, "
                        "comma-separated; batched is always measured")
    args = parser.parse_args()
    clients = sorted({int(c) for c in args.clients.split(",")} | {1, 4, 8})
    modes = [m for m in MODES if m[0] in set(args.modes.split(",")) | {"batched"}]
    korean, english = load_documents("korean-law"), load_documents("python-docs", limit=100)
    prompts = [line.strip()[:48] for doc in korean + english for line in doc.splitlines() if len(line.strip()) > 20][:64]
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = save_demo_run(Path(tmp) / "bench", korean + english, vocab_size=1024, **MODEL)
        for mode, max_batch, dtype, prefill_dtype in modes:
            process, url = serve(run_dir, max_batch, dtype, prefill_dtype, args.device)
            try:
                def body(i: int) -> dict:
                    return {"model": "bench", "prompt": prompts[i % len(prompts)], "max_tokens": MAX_TOKENS,
                            "temperature": 1.0, "seed": i}

                run_load(url, body, clients=2, requests=4)  # warm-up
                figures[mode] = {str(c): measure(url, body, c) for c in clients}
            finally:
                process.terminate()
                process.wait(timeout=30)
        alone = scheduler_only(run_dir, prompts, args.device)
        long_prompt = load_tokenizer(run_dir).encode(" ".join(korean))[:LONG_PROMPT]
        first_token = time_to_first_token(run_dir, long_prompt, args.device)
    ours = figures["batched"]
    tps = lambda table, c: table[str(c)]["tokens_per_second"]  # noqa: E731
    ratios = {"batched_8_over_1_clients": tps(ours, 8) / tps(ours, 1),
              "batched_4_over_1_clients": tps(ours, 4) / tps(ours, 1),
              "scheduler_only_8_over_1_sequences": alone["8"] / alone["1"],
              "time_to_first_token_fp32_over_bf16_prefill": first_token["float32"] / first_token["bfloat16_prefill"]}
    if "one_at_a_time" in figures:
        peer = figures["one_at_a_time"]
        ratios |= {"one_at_a_time_8_over_1_clients": tps(peer, 8) / tps(peer, 1),
                   "batched_over_one_at_a_time_at_8_clients": tps(ours, 8) / tps(peer, 8)}
    for mode, name in (("batched_bf16", "bf16"), ("batched_bf16_prefill", "bf16_prefill")):
        if mode in figures:
            ratios |= {f"{name}_8_over_1_clients": tps(figures[mode], 8) / tps(figures[mode], 1),
                       f"{name}_over_fp32_at_1_client": tps(figures[mode], 1) / tps(ours, 1),
                       f"{name}_over_fp32_at_8_clients": tps(figures[mode], 8) / tps(ours, 8)}
    write_result(
        "serve" if args.device == "cpu" else f"serve_{args.device.split(':')[0]}",
        figures={"device": args.device, "model": MODEL, "max_tokens": MAX_TOKENS, "requests_per_client": PER_CLIENT,
                 "repeats": REPEATS, **{mode: table for mode, table in figures.items() if mode != "one_at_a_time"},
                 "scheduler_only_tokens_per_second": alone,
                 f"time_to_first_token_ms_{LONG_PROMPT}_token_prompt": first_token},
        peers={mode: table for mode, table in figures.items() if mode == "one_at_a_time"},
        ratios=ratios,
        notes="Server in its own process (1 torch thread), clients are threads of the benchmark process, all "
              f"on 127.0.0.1 of a machine with {os.cpu_count()} cores (on 2, server and clients share them: the "
              "figures are noisy). The model is freshly initialised (speed depends on its shape, not its weights).",
    )


if __name__ == "__main__":
    main()
