"""Regression tests for the hardening of issue #20: the output policy, untrusted checkpoints, one-line CLI
errors, numeric options, empty and malformed inputs. Each test names the defect it pins."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lm2llm.errors import UserError
from lm2llm.runs import OUTPUT_MARKER, atomic_dir, check_out, claim_out, output_dir, output_kind

SENTENCES = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n"


def one_line_error(result) -> bool:
    return result.code == 2 and result.err.startswith("error: ") and result.err.count("\n") == 1 \
        and "Traceback" not in result.err


# --- the output policy ---------------------------------------------------------------------------------


def test_output_policy_refuses_what_we_did_not_write(tmp_path, monkeypatch):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(UserError, match="did not write"):
            check_out(foreign, "ngram", force=force)
    ours = claim_out(tmp_path / "ours", "ngram")
    (ours / "model.arpa").write_text("x")
    assert output_kind(ours) == "ngram"
    with pytest.raises(UserError, match="earlier lm2llm ngram output.*--force"):
        check_out(ours, "ngram")
    with pytest.raises(UserError, match="an lm2llm ngram output"):  # another kind, even with --force
        check_out(ours, "dataset", force=True)
    assert check_out(ours, "ngram", force=True) and check_out(ours, "ngram", reuse=True)
    assert not check_out(tmp_path / "new", "ngram") and not check_out(claim_out(tmp_path / "empty", "x"), "y")

    monkeypatch.chdir(foreign)
    monkeypatch.setenv("HOME", "/var/lm2llm-test-home")
    for refused, why in [(".", "current folder"), ("..", "current folder"), (tmp_path, "current folder"),
                         ("/", "filesystem root"), ("/var/lm2llm-test-home", "home folder"), ("/var", "home folder")]:
        with pytest.raises(UserError, match=why):
            check_out(refused, "ngram", force=True)
    with pytest.raises(UserError, match="contains the input"):
        check_out(tmp_path / "ours", "ngram", force=True, inputs=[tmp_path / "ours" / "model.arpa"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="names an existing file"):
        check_out(tmp_path / "file", "ngram")
    assert (foreign / "keep.txt").read_text() == "mine"


def test_output_dir_replaces_only_our_own_and_cleans_stale_builds(tmp_path):
    out = tmp_path / "run"
    with output_dir(out, "tokenizer") as build:
        (build / "a").write_text("1")
    with output_dir(out, "tokenizer", force=True) as build:
        (build / "b").write_text("2")
    assert sorted(os.listdir(out)) == [OUTPUT_MARKER, "b"]
    dead = 2 ** 22 + 12345  # above Linux's default pid_max: no such process
    stale = tmp_path / f".run.building-{dead}-abc"
    stale.mkdir()
    (stale / OUTPUT_MARKER).write_text('{"kind": "tokenizer"}')
    not_ours = tmp_path / f".run.building-{dead}-xyz"
    not_ours.mkdir()
    (not_ours / "data").write_text("someone else's")
    with atomic_dir(tmp_path / "run2", "x"):
        pass
    with output_dir(out, "tokenizer", force=True):
        pass
    assert not stale.exists() and (not_ours / "data").is_file()  # ours went; a look-alike without our marker stays


def test_saved_weights_keep_the_umask_mode(tmp_path):
    import torch

    from lm2llm.models import build_model, save_model

    save_model(build_model("gpt", vocab_size=16, context_length=8, n_layer=1, n_head=1, d_model=8), tmp_path / "m")
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes
    assert torch.__version__  # torch was imported for the model


def test_cli_ngram_and_arpa_never_delete_what_they_did_not_write(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.txt").write_text(SENTENCES)
    Path("victim").mkdir()
    Path("victim/keep.txt").write_text("precious")
    train = ["ngram", "train", "t.txt", "--discount-fallback", "--order", "2"]
    for out in ("victim", ".", "/", "..", "t.txt"):
        assert one_line_error(cli(*train, "--out", out))
    assert Path("victim/keep.txt").read_text() == "precious" and Path("t.txt").read_text() == SENTENCES
    assert cli(*train, "--out", "lm").code == 0
    assert "--force" in cli(*train, "--out", "lm").err
    assert cli(*train, "--out", "lm", "--force").code == 0
    export = ["ngram", "export-arpa", "lm", "--out"]
    for out in ("t.txt", "lm/model.arpa", "lm"):
        assert one_line_error(cli(*export, out, "--force"))
    assert Path("t.txt").read_text() == SENTENCES
    assert cli(*export, "lm.arpa").code == 0
    assert "--force" in cli(*export, "lm.arpa").err
    assert cli(*export, "lm.arpa", "--force").code == 0
    parent_is_file = cli(*train, "--out", "t.txt/sub")  # an OSError from the disk: one line, no traceback
    assert one_line_error(parent_is_file)


def test_cli_data_prepare_out_equal_to_input_keeps_the_input(cli, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("a document long enough to pass every quality filter there is. " * 3)
    result = cli("data", "prepare", corpus, "--out", corpus, "--force")
    assert one_line_error(result) and "input" in result.err
    assert sorted(os.listdir(corpus)) == ["a.txt"]


# --- untrusted checkpoints -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    import transformers

    from lm2llm.hf.quiet import quiet_transformers

    directory = tmp_path_factory.mktemp("hf") / "tiny"
    config = transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32,
                                     bos_token_id=0, eos_token_id=0)
    with quiet_transformers():
        transformers.GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def _variant(base: Path, where: Path, **config_edits) -> Path:
    shutil.copytree(base, where)
    config = json.loads((where / "config.json").read_text())
    (where / "config.json").write_text(json.dumps({**config, **config_edits}))
    return where


@pytest.mark.parametrize(("edits", "message"), [
    ({"n_layer": 100_000}, "asks for 100000 layers but the weights hold 2"),
    ({"n_embd": 1_000_000}, "more than the 2,000,000,000 lm2llm imports"),
    ({"n_embd": 32}, "describe .* parameters but the weights hold only"),
    ({"layer_norm_epsilon": float("nan")}, "layer_norm_epsilon is nan"),
    ({"n_head": 0}, "n_head is 0"),
    ({"n_layer": "two"}, "field 'n_layer'"),
    ({"num_labels": 10_000_000, "architectures": ["GPT2ForSequenceClassification"]}, "num_labels is 10000000"),
    ({"model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig"}}, "custom code"),
])
def test_import_hf_refuses_hostile_configs_before_allocating(cli, tiny_checkpoint, tmp_path, edits, message):
    source = _variant(tiny_checkpoint, tmp_path / "ck", **edits)
    sentinel = tmp_path / "ran"
    (source / "evil.py").write_text(f"open({str(sentinel)!r}, 'w').write('x')\n")
    result = cli("import-hf", source, "--out", tmp_path / "out")
    assert one_line_error(result) and "config.json" in result.err
    assert __import__("re").search(message, result.err), result.err
    assert not sentinel.exists() and not (tmp_path / "out").exists()


def test_import_hf_refuses_broken_weights_and_escaping_shards(cli, tiny_checkpoint, tmp_path):
    truncated = _variant(tiny_checkpoint, tmp_path / "truncated")
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    result = cli("import-hf", truncated, "--out", tmp_path / "o1")
    assert one_line_error(result) and "model.safetensors: not a valid safetensors file" in result.err

    sharded = _variant(tiny_checkpoint, tmp_path / "sharded")
    (sharded / "model.safetensors").rename(tmp_path / "secret.safetensors")
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../secret.safetensors"}}))
    result = cli("import-hf", sharded, "--out", tmp_path / "o2")
    assert one_line_error(result) and "not a file name inside the checkpoint folder" in result.err

    assert cli("import-hf", tiny_checkpoint, "--out", tmp_path / "o3").code == 0  # the untouched one imports


# --- one-line errors, numbers, empty and malformed inputs ------------------------------------------------


@pytest.mark.parametrize("args", [
    ["sft", "nowhere", "--out", "o", "--batch-size", "0"],
    ["sft", "nowhere", "--out", "o", "--lr", "nan"],
    ["sft", "nowhere", "--out", "o", "--steps", "0"],
    ["dpo", "nowhere", "--out", "o", "--batch-size", "0"],
    ["dpo", "nowhere", "--out", "o", "--lr", "nan"],
    ["reward", "nowhere", "--out", "o", "--steps", "0"],
    ["ppo", "nowhere", "--reward", "nowhere", "--out", "o", "--steps", "0"],
    ["ppo", "nowhere", "--reward", "nowhere", "--out", "o", "--lr", "nan"],
])
def test_numeric_options_are_checked_before_any_work(cli, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert one_line_error(result) and "nowhere" not in result.err  # refused before the run was even looked for
    assert not Path("o").exists()


@pytest.mark.parametrize("content", [b"", b"\n \n", b"\x00\x01\x02binary\x00" * 10])
def test_tokenizer_train_refuses_empty_and_binary_input(cli, tmp_path, content):
    (tmp_path / "in.txt").write_bytes(content)
    result = cli("tokenizer", "train", tmp_path / "in.txt", "--out", tmp_path / "tok", "--vocab-size", "300")
    assert one_line_error(result) and "no text" in result.err and not (tmp_path / "tok").exists()


def test_empty_ngram_text_is_refused(cli, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    result = cli("ngram", "train", tmp_path / "empty.txt", "--out", tmp_path / "lm")
    assert one_line_error(result) and "empty" in result.err


@pytest.mark.parametrize(("name", "content", "message"), [
    ("extra.csv", "text,label\nhello,a,extra\n", "different number of fields"),
    ("short.csv", "text,label\nhello\n", "different number of fields"),
    ("quote.csv", 'text,label\n"open quote,a\nnext,b\n', "malformed CSV"),
    ("huge.csv", "text,label\n" + "x" * 140_000 + ",a\n", "malformed CSV.*field larger"),
    ("list.jsonl", '{"text": "hi", "label": [1]}\n', "must be a string or a whole number"),
    ("deep.json", "[" * 100_000, "nested too deeply"),
])
def test_classify_data_rows_are_checked(cli, tmp_path, name, content, message):
    from lm2llm.classify.data import read_labelled

    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        read_labelled(tmp_path / name)
    result = cli("classify", "train", "--data", tmp_path / name, "--out", tmp_path / "run")
    assert one_line_error(result) and name in result.err and not (tmp_path / "run").exists()


def test_sft_skip_invalid_counts_what_it_skipped(tmp_path):
    from lm2llm.finetune.sft import SFTConfig, held_out_records

    good = {"instruction": "say hi", "output": "hi"}
    lines = [json.dumps(good)] * 4 + ['{"instruction": 3}', "not json"]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    train, test, skipped = held_out_records(SFTConfig(base="b", out="o", data=str(tmp_path / "d.jsonl"),
                                                      skip_invalid=True, n_test=1))
    assert len(train) + len(test) == 4 and len(skipped) == 2 and skipped[0].startswith(f"{tmp_path / 'd.jsonl'}:5")
    with pytest.raises(UserError, match="--skip-invalid"):
        held_out_records(SFTConfig(base="b", out="o", data=str(tmp_path / "d.jsonl"), n_test=1))


def test_truncated_weights_of_a_run_are_one_line(cli, tmp_path):
    from lm2llm.models import build_model, save_model

    save_model(build_model("gpt", vocab_size=16, context_length=8, n_layer=1, n_head=1, d_model=8), tmp_path / "run")
    weights = tmp_path / "run" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    result = cli("export-hf", tmp_path / "run", "--out", tmp_path / "hf")
    assert one_line_error(result) and "safetensors" in result.err


# --- fuzzing the CLI's file inputs ---------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_fuzz_cli_file_inputs(cli, tmp_path, monkeypatch):
    """Arbitrary bytes as the input file of commands that read files: exit 0 or a one-line error with exit 2,
    the input unchanged, and nothing written outside the command's --out."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    lines = st.lists(st.text(max_size=20) | st.sampled_from(['{"text": "안녕"}', "text,label", '"', "[", "\x00"]),
                     max_size=8).map("\n".join)
    contents = st.binary(max_size=200) | lines.map(str.encode) | st.just(b"[" * 50_000)
    commands = st.sampled_from([
        (".txt", lambda f, o: ["ngram", "train", f, "--out", o, "--discount-fallback", "--order", "2"]),
        (".jsonl", lambda f, o: ["data", "prepare", f, "--out", o, "--min-chars", "1", "--no-near-dedup"]),
        (".csv", lambda f, o: ["data", "prepare", f, "--out", o, "--min-chars", "1", "--no-near-dedup"]),
        (".json", lambda f, o: ["data", "prepare", f, "--out", o, "--min-chars", "1", "--no-near-dedup"]),
        (".txt", lambda f, o: ["tokenizer", "train", f, "--out", o, "--vocab-size", "260"]),
    ])
    monkeypatch.chdir(tmp_path)
    counter = iter(range(10**6))

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(command=commands, content=contents)
    def fuzz(command, content):
        suffix, args = command
        n = next(counter)
        scratch = Path(f"case{n}")
        scratch.mkdir()
        source = scratch / f"input{suffix}"
        source.write_bytes(content)
        before = _snapshot(tmp_path)
        result = cli(*args(source, scratch / "out"))
        assert result.code in (0, 2), result.err
        if result.code == 2:
            assert one_line_error(result), result.err
        assert source.read_bytes() == content
        after = _snapshot(tmp_path)
        changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
        assert all(name.startswith(f"case{n}/out/") for name in changed), changed

    fuzz()


def test_fuzz_record_readers(tmp_path):
    """The readers behind classify, sft and dpo/reward/ppo `--data`: a result or a UserError, nothing else."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from lm2llm.align.preference import read_preferences
    from lm2llm.classify.data import read_labelled
    from lm2llm.finetune.data import load_instructions

    records = st.dictionaries(st.sampled_from(["text", "label", "prompt", "chosen", "rejected", "instruction",
                                               "output", "messages", "role", "content"]),
                              st.none() | st.integers() | st.text(max_size=10) | st.lists(st.text(max_size=5)),
                              max_size=5).map(json.dumps)
    rows = st.lists(records | st.text(max_size=30) | st.sampled_from(["text,label", 'a,"b', "x,1,2"]), max_size=6)
    contents = rows.map("\n".join).map(str.encode) | st.binary(max_size=100) | st.just(b"[" * 20_000)

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json"]), content=contents)
    def fuzz(suffix, content):
        path = tmp_path / f"data{suffix}"
        path.write_bytes(content)
        for reader in (read_labelled, load_instructions, read_preferences):
            try:
                reader(path)
            except UserError as error:
                assert "\n" not in str(error).strip()

    fuzz()


def test_a_run_written_before_markers_can_be_resumed_but_not_replaced(tmp_path):
    legacy = tmp_path / "run"
    legacy.mkdir()
    (legacy / "config.json").write_text('{"stage": "train"}')
    assert check_out(legacy, "train", reuse=True)
    with pytest.raises(UserError, match="did not write"):
        check_out(legacy, "train", force=True)
    assert claim_out(legacy, "train", reuse=True) == legacy and output_kind(legacy) == "train"
    assert (legacy / "config.json").is_file()
    tour = tmp_path / "tour"
    tour.mkdir()
    for name in ("report.html", "report.md"):
        (tour / name).write_text("<p>")
    assert check_out(tour, "tour", reuse=True) and not (tmp_path / "x").exists()
