import json

from conftest import run_cli_subprocess


def test_help_lists_existing_stages(cli):
    result = cli("--help")
    assert result.code == 0
    for command in ("env", "tour"):
        assert command in result.out


def test_version(cli):
    result = cli("--version")
    assert result.code == 0
    assert result.out.strip().startswith("lm2llm ")


def test_bad_flag_is_one_line_exit_2_without_traceback():
    result = run_cli_subprocess("tour", "--no-such-flag")
    assert result.code == 2
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "--no-such-flag" in result.err


def test_bad_value_names_the_option():
    result = run_cli_subprocess("env", "--seconds", "fast")
    assert result.code == 2
    assert "--seconds" in result.err and "Traceback" not in result.err


def test_user_error_names_the_field_and_debug_shows_traceback(tmp_path):
    result = run_cli_subprocess("tour", "--only", "99", "--out", tmp_path)
    assert result.code == 2
    assert "--only" in result.err and "Traceback" not in result.err
    debug = run_cli_subprocess("--debug", "tour", "--only", "99", "--out", tmp_path)
    assert debug.code != 0 and "Traceback" in debug.err


def test_env_json_reports_measured_throughput(cli):
    result = cli("env", "--seconds", "0.1", "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["torch"] and data["threads"] >= 1
    assert data["matmul"][0]["dtype"] == "float32" and data["matmul"][0]["gflops"] > 0


def test_help_does_not_import_the_engines():
    """`lm2llm --help` stays fast: CLI modules import torch (and what needs it) only inside their commands."""
    import subprocess
    import sys

    from conftest import SRC

    code = ("import sys; import lm2llm.cli; "
            "print(sorted(m for m in ('torch', 'numpy', 'transformers', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(SRC), "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
