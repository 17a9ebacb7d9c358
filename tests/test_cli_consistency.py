"""The CLI follows one set of rules (issue #27): commands are module-level functions; what a command acts on
is positional, with the old option spellings hidden but working; help renders literally and lists commands
in the journey's order; `train` has real options and points to `--set`; `generate` stops at end-of-text and
end-of-turn tokens and hides special tokens unless `--show-special`; third-party chatter is silenced."""

from __future__ import annotations

import importlib
import json
import os
import re
import warnings
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from lm2llm.cli import JOURNEY, app
from lm2llm.errors import UserError
from lm2llm.inference.chat import chat_end_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.models import build_model, save_model
from lm2llm.tokenizer import BPETokenizer, load_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
SENTENCES = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n" * 5


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def commands() -> dict[str, object]:
    """Every command as typed ('ngram train') with its click command."""
    found = {}
    for name, command in typer.main.get_command(app).commands.items():
        subs = getattr(command, "commands", None)
        found.update({f"{name} {sub}": c for sub, c in subs.items()} if subs else {name: command})
    return found


def test_every_command_is_a_module_level_function():
    def registered(typer_app: typer.Typer, prefix: str = ""):
        for info in typer_app.registered_commands:
            yield f"{prefix}{info.name}", info.callback
        for group in typer_app.registered_groups:
            yield from registered(group.typer_instance, f"{prefix}{group.name} ")

    found = dict(registered(app))
    assert set(found) == set(commands())
    nested = [path for path, function in found.items()
              if "<locals>" in function.__qualname__
              or getattr(importlib.import_module(function.__module__), function.__name__, None) is not function]
    assert not nested, f"define these commands at module level: {nested}"


def test_help_renders_literally_without_type_placeholders():
    root = typer.main.get_command(app)
    root_context = typer.Context(root, info_name="lm2llm")
    helps = {path: command.get_help(typer.Context(command, info_name=path, parent=root_context))
             for path, command in commands().items() if path != "lm-eval"}  # lm-eval's flags are lm_eval's own
    helps["--help"] = invoke("--help").output
    for path, text in helps.items():
        assert not re.search(r"<bool>|<list\[|\x1b\[", text), (path, text)
    train = " ".join(invoke("train", "--help").output.split())
    assert "([model] table for the model)" in train  # rich markup used to swallow "[model]"
    for flag in ("--data", "--out"):
        assert "Required" in train.split(f"{flag} <path>")[1].split(" --")[0], train
    assert "every linear layer" in " ".join(helps["sft"].split())  # --lora without targets is no default


def test_a_group_alone_prints_its_help_not_an_error(cli):
    result = cli("ngram")
    assert result.code == 2 and "error:" not in result.err
    assert re.search(r"^Commands:\n  train ", result.err, re.M), result.err


def test_top_level_help_lists_commands_in_the_journeys_order():
    listed = re.findall(r"^  (\S+)  ", invoke("--help").output.split("Commands:")[1], re.M)
    assert set(listed) == set(typer.main.get_command(app).commands), "every command is listed"
    assert [c for c in JOURNEY if c in listed] == [c for c in listed if c in JOURNEY]
    order = ["data", "tokenizer", "ngram", "train", "sft", "reward", "dpo", "ppo", "generate", "chat", "serve", "eval"]
    assert [c for c in listed if c in order] == order


def test_inputs_are_positional_and_the_old_spellings_still_work(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(SENTENCES, encoding="utf-8")
    new = invoke("ngram", "train", text, "--out", tmp_path / "a", "--order", "2", "--discount-fallback", "--json")
    old = invoke("ngram", "train", "--text", text, "--out", tmp_path / "b", "--order", "2", "--discount-fallback", "--json")
    assert new.exit_code == old.exit_code == 0, (new.output, old.output)
    assert json.loads(new.stdout)["ngrams"] == json.loads(old.stdout)["ngrams"]
    assert "--text is now the argument TEXT" in old.stderr and not new.stderr
    for command in (["eval", "--text", text], ["generate", "--seed", "0"]):
        new = invoke("ngram", command[0], tmp_path / "a", *command[1:], "--json")
        old = invoke("ngram", command[0], "--model", tmp_path / "a", *command[1:], "--json")
        assert new.exit_code == old.exit_code == 0 and new.stdout == old.stdout, (new.output, old.output)
    assert invoke("ngram", "export-arpa", tmp_path / "a", "--out", tmp_path / "a.arpa").exit_code == 0
    assert invoke("ngram", "export-arpa", "--model", tmp_path / "a", "--out", tmp_path / "b.arpa").exit_code == 0
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()

    tokenizers = [invoke("tokenizer", "train", *spelling, "--out", tmp_path / name, "--vocab-size", "270")
                  for name, spelling in (("tok-new", [text]), ("tok-old", ["--source", text]))]
    assert [r.exit_code for r in tokenizers] == [0, 0], [r.output for r in tokenizers]
    assert load_tokenizer(tmp_path / "tok-new").encode(SENTENCES) == load_tokenizer(tmp_path / "tok-old").encode(SENTENCES)

    for stage in ("reward", "dpo", "ppo"):  # the same check of the SFT run either way, before any training
        reward = ["--reward", tmp_path] if stage == "ppo" else []
        new = invoke(stage, tmp_path / "nowhere", *reward, "--out", tmp_path / "o")
        old = invoke(stage, "--sft", tmp_path / "nowhere", *reward, "--out", tmp_path / "o")
        assert isinstance(new.exception, UserError) and str(new.exception) == str(old.exception)
        twice = invoke(stage, tmp_path, "--sft", tmp_path, *reward, "--out", tmp_path / "o")
        assert "given twice" in str(twice.exception)
    missing = invoke("ngram", "train", "--out", tmp_path / "c")
    assert "missing argument TEXT" in str(missing.exception)


def test_hidden_aliases_stay_out_of_help():
    for path, flag in (("ngram train", "--text"), ("ngram eval", "--model"), ("tokenizer train", "--source"),
                       ("reward", "--sft"), ("ppo", "--sft")):
        assert not re.search(rf"^\s+{flag} ", invoke(*path.split(), "--help").output, re.M), (path, flag)


def test_train_has_real_options_and_points_to_set_for_the_rest(tmp_path):
    bad_lr = invoke("train", "--data", tmp_path, "--out", tmp_path / "r", "--lr", "nan")
    assert isinstance(bad_lr.exception, UserError) and "lr" in str(bad_lr.exception)  # reached the config
    assert "--max-steps" in invoke("train", "--max-steps", "0").output
    close = invoke("train", "--max-step", "3")
    assert close.exit_code == 2
    assert "did you mean --max-steps?" in close.output and "--set key=value" in close.output
    setting = invoke("train", "--warmup-steps", "3")
    assert "--set warmup_steps=VALUE" in setting.output and "did you mean" not in setting.output
    assert "--text" not in invoke("ngram", "train", "--txt", "x").output  # hidden spellings are not suggested


def test_unknown_preset_lists_only_its_familys_presets():
    from lm2llm.models.factory import config_for

    with pytest.raises(UserError) as caught:
        config_for("gpt", "gpt-huge")
    assert "gpt2-small" in str(caught.value) and "llama" not in str(caught.value) and "bert" not in str(caught.value)


def emitting(model: torch.nn.Module, token_id: int) -> torch.nn.Module:
    """Make a real GPT's greedy choice `token_id` at every step: the final norm's output becomes a constant
    vector that only that token's head row sees."""
    with torch.no_grad():
        model.norm_f.weight.zero_()
        model.norm_f.bias.zero_()
        model.norm_f.bias[0] = 10.0
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[token_id, 0] = 1.0
    return model


def always_emitting(tokenizer, token: str, out: Path) -> Path:
    """A run directory whose GPT emits `token` at every step."""
    torch.manual_seed(0)
    model = build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size)
    save_model(emitting(model, tokenizer.fast.token_to_id(token)), out)
    tokenizer.save(out)
    return out


def completion(*args) -> dict:
    result = invoke("generate", *args, "-n", "4", "-t", "0", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["completions"][0]


def test_generate_stops_at_end_tokens_and_hides_special_tokens(tmp_path):
    """A base GPT with lm2llm's tokenizer: <|end|> ends the text (it used to be printed and passed);
    another special token is left out of the text unless --show-special."""
    tokenizer = BPETokenizer.train([SENTENCES, "안녕하세요 반갑습니다"], vocab_size=300)
    ended = completion(always_emitting(tokenizer, "<|end|>", tmp_path / "end"), "-p", "the cat")
    assert ended["finish_reason"] == "stop" and ended["text"] == ""
    pad_run = always_emitting(tokenizer, "<|pad|>", tmp_path / "pad")
    hidden, shown = completion(pad_run, "-p", "the cat"), completion(pad_run, "-p", "the cat", "--show-special")
    assert hidden["token_ids"] == shown["token_ids"] == [tokenizer.pad_id] * 4
    assert hidden["text"] == "" and shown["text"] == "<|pad|>" * 4
    printed = invoke("generate", pad_run, "-p", "the cat", "-n", "3", "-t", "0")
    assert printed.stdout == "the cat\n"


def test_generate_with_smollm2s_tokenizer_stops_at_im_end_and_endoftext(smollm2_run):
    """SmolLM2's own tokenizer (ChatML) with a GPT that emits one chosen token: <|im_end|> and <|endoftext|>
    end the text; any other special token stays out of it unless shown (what `generate --show-special` sets)."""
    tokenizer = load_tokenizer(smollm2_run)
    torch.manual_seed(0)
    model = build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size)
    generator = TextGenerator(model, tokenizer, end_ids=tokenizer.stop_ids, hidden_ids=tokenizer.special_ids)
    showing = TextGenerator(model, tokenizer, end_ids=tokenizer.stop_ids)
    greedy = SamplingConfig(max_new_tokens=4, temperature=0)
    for token in ("<|im_end|>", "<|endoftext|>"):
        emitting(model, tokenizer.fast.token_to_id(token))
        ended = generator.generate(["Hi"], greedy)[0]
        assert (ended.finish_reason, ended.text, ended.token_ids) == ("stop", "", []), token
    assert tokenizer.fast.token_to_id("<|endoftext|>") in chat_end_ids(tokenizer)  # chat ends there too
    other = next(t for t in tokenizer.special_tokens if t not in ("<|im_end|>", "<|endoftext|>", "<|im_start|>"))
    emitting(model, tokenizer.fast.token_to_id(other))
    assert generator.generate(["Hi"], greedy)[0].text == ""
    assert showing.generate(["Hi"], greedy)[0].text == other * 4


def test_quiet_by_default_verbose_on_request(capfd, monkeypatch):
    from lm2llm.quiet import QUIET_ENV, native_stderr_silenced, set_verbose

    for key in [*QUIET_ENV, "LM2LLM_VERBOSE", "PYTHONWARNINGS"]:
        monkeypatch.setenv(key, "")  # recorded, so the test leaves the environment as it found it
        monkeypatch.delenv(key)
    kenlm = pytest.importorskip("kenlm")
    arpa = Path(__file__).parent / "fixtures" / "kenlm" / "en.o3.arpa"
    set_verbose(False)
    assert all(os.environ[key] == value for key, value in QUIET_ENV.items())
    assert "ignore:Glyph" in os.environ["PYTHONWARNINGS"]
    with warnings.catch_warnings(record=True) as shown:  # the filters set above, recorded instead of printed
        for module in ("transformers.modeling_utils", "lm2llm.training.run"):
            warnings.warn_explicit("advice", FutureWarning, "f.py", 1, module=module)
        warnings.warn_explicit("Glyph 54620 (\\N{HANGUL SYLLABLE HAN}) missing from font(s) DejaVu Sans.",
                               UserWarning, "f.py", 2, module="lm2llm.tour.plots")
    assert [w.filename for w in shown] == ["f.py"] and shown[0].lineno == 1  # lm2llm's own advice only
    with native_stderr_silenced():
        kenlm.Model(str(arpa))
    assert "binary file" not in capfd.readouterr().err
    monkeypatch.setenv("LM2LLM_VERBOSE", "1")
    with native_stderr_silenced():
        kenlm.Model(str(arpa))
    assert "Loading the LM will be faster if you build a binary file" in capfd.readouterr().err


def test_the_tour_ends_with_a_one_screen_summary(capsys, tmp_path):
    from lm2llm.cli.tour import print_summary
    from lm2llm.tour.framework import Chapter, ChapterResult, Claim, Text, demonstration
    from lm2llm.tour.runner import TourOutcome

    def result(*claims: Claim) -> ChapterResult:
        return ChapterResult(Text("done", "끝"), claims=list(claims), seconds=12.3)

    claim = Text("[model] claim", "[model] 주장")
    chapters = [(Chapter("1.1", Text("N-grams [model]", "n-gram [모델]"), result), result(
                    Claim(claim, claim, True), Claim(claim, claim, None), demonstration(claim, claim, True)), False),
                (Chapter("4.2", Text("Tokenization", "토큰화"), result), result(Claim(claim, claim, False)), True)]
    print_summary(TourOutcome(tmp_path, tmp_path / "report.html", tmp_path / "report.md", chapters), "en")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 8 and "N-grams [model]" in lines[3]
    assert lines[3].split("│")[2:] == [" 1 ", " 0 ", " 1 ", " 1 ", "      12"]
    words = " ".join(" ".join(lines).split())  # the console wraps the report line where the tmp path's length puts it
    assert "reused" in lines[4] and "1/3 measured claims hold, 1 do not, 1 inconclusive" in words
