"""`lm2llm env`: what this machine is and how fast it multiplies matrices."""

from __future__ import annotations

import typer

from lm2llm.cli.output import JSON_OPTION, print_json, print_table


def env_command(
    seconds: float = typer.Option(1.0, min=0.0, help="Seconds to time matmuls per dtype (0 skips)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Torch version, threads, device, bf16 support and measured matmul GFLOP/s (saved for MFU)."""
    from lm2llm import env as env_api  # imports torch: only when the command runs, not for --help

    report = env_api.collect(measure_seconds=seconds)
    if json_out:
        print_json(report)
        return
    rows = [
        ("python", report.python),
        ("torch", report.torch),
        ("cpu", report.cpu),
        ("cores / torch threads", f"{report.cores} / {report.threads}"),
        ("device", report.device),
        ("bf16 supported", report.bf16_supported),
    ]
    rows += [(f"matmul {m.dtype} ({m.size}²)", f"{m.gflops:,.1f} GFLOP/s") for m in report.matmul]
    rows += [(f"data-sheet peak {dtype} ({report.device_name})", f"{g:,.0f} GFLOP/s") for dtype, g in report.datasheet.items()]
    print_table("lm2llm env", rows)


def register(app: typer.Typer) -> None:
    app.command("env")(env_command)
