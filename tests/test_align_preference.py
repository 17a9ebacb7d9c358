"""Preference data: JSONL and Alpaca-array readers, clear errors for malformed records, held-out split."""

from __future__ import annotations

import json

import pytest

from lm2llm.align.preference import PreferencePair, read_preferences, split_held_out, write_preference_jsonl
from lm2llm.errors import UserError

KOREAN_PAIR = PreferencePair(
    prompt=[{"role": "system", "content": "간결하게 답하세요."}, {"role": "user", "content": "3 더하기 4는?"}],
    chosen="7입니다.",
    rejected="음, 아마도 8일 거예요. 아니면 9일지도 모르고요.",
    kind="rambling",
)
TEXT_PAIR = PreferencePair(prompt="Capital of France?", chosen="Paris.", rejected="London, I think.")


def test_jsonl_round_trip_keeps_korean_and_both_prompt_forms(tmp_path):
    path = write_preference_jsonl([KOREAN_PAIR, TEXT_PAIR], tmp_path / "prefs.jsonl")
    assert "간결하게" in path.read_text(encoding="utf-8")  # written as UTF-8, not \u escapes
    assert read_preferences(path) == [KOREAN_PAIR, TEXT_PAIR]
    assert TEXT_PAIR.messages() == [{"role": "user", "content": "Capital of France?"}]


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n" + json.dumps(TEXT_PAIR.to_json()) + "\n\n", encoding="utf-8")
    assert read_preferences(path) == [TEXT_PAIR]


@pytest.mark.parametrize("line, message", [
    ("{not json", "invalid JSON"),
    ('["a", "b"]', "expected a JSON object"),
    ('{"prompt": "q", "chosen": "a"}', "missing field(s) rejected"),
    ('{"prompt": "q", "chosen": "", "rejected": "b"}', "'chosen' must be a non-empty string"),
    ('{"prompt": 3, "chosen": "a", "rejected": "b"}', "'prompt' must be a non-empty string"),
    ('{"prompt": [], "chosen": "a", "rejected": "b"}', "empty list of messages"),
    ('{"prompt": [{"role": "robot", "content": "안녕"}], "chosen": "a", "rejected": "b"}', "role 'robot'"),
    ('{"prompt": [{"role": "user"}], "chosen": "a", "rejected": "b"}', "exactly 'role' and 'content'"),
    ('{"prompt": [{"role": "assistant", "content": "네"}], "chosen": "a", "rejected": "b"}', "must be a user turn"),
    ('{"prompt": "q", "chosen": "a", "rejected": "b", "kind": 1}', "'kind' must be a string"),
])
def test_malformed_jsonl_record_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(TEXT_PAIR.to_json()) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UserError) as info:
        read_preferences(path)
    assert info.value.where == f"{path}:2"
    assert message in info.value.message


def test_missing_empty_and_unknown_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_preferences(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="no preference records"):
        read_preferences(tmp_path / "empty.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_preferences(tmp_path / "latin1.jsonl")


def test_alpaca_array_errors_name_file_and_line(tmp_path):
    good = {"instruction": "번역하세요.", "input": "hello", "output": "안녕", "chosen": "안녕하세요", "rejected": "몰라"}
    path = tmp_path / "prefs.json"
    path.write_text(json.dumps([good, {**good, "instruction": ""}], indent=1), encoding="utf-8")
    with pytest.raises(UserError) as info:
        read_preferences(path)
    assert info.value.where == f"{path}:9" and "instruction" in info.value.message
    path.write_text(json.dumps([good, {k: v for k, v in good.items() if k != "rejected"}]), encoding="utf-8")
    with pytest.raises(UserError, match="missing field"):
        read_preferences(path)
    path.write_text('[{"prompt": "q", "chosen": "a", "rejected": "b"},\n {"prompt": "q", "chosen": 3', encoding="utf-8")
    with pytest.raises(UserError) as info:
        read_preferences(path)
    assert info.value.where == f"{path}:2"
    path.write_text(json.dumps([good]), encoding="utf-8")
    (pair,) = read_preferences(path)
    assert pair.prompt == [{"role": "user", "content": "번역하세요.\n\nhello"}]


def test_real_preference_file_loads(shared_data):
    path = shared_data / "instructions-en" / "instruction-data-with-preference.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    pairs = read_preferences(path)
    records = json.loads(path.read_text(encoding="utf-8"))
    assert len(pairs) == len(records) == 1100
    for pair, record in zip(pairs, records, strict=True):
        assert (pair.chosen, pair.rejected) == (record["chosen"], record["rejected"])
        (message,) = pair.prompt
        assert message["role"] == "user" and message["content"].startswith(record["instruction"])
        assert (record["input"] in message["content"]) if record["input"] else message["content"] == record["instruction"]


def test_held_out_split_is_disjoint_deterministic_and_checked():
    pairs = [PreferencePair(f"질문 {i}", f"답 {i}", f"오답 {i}") for i in range(20)]
    train, held = split_held_out(pairs, 0.25, seed=3)
    assert len(held) == 5 and len(train) == 15
    assert sorted(map(str, train + held)) == sorted(map(str, pairs))
    assert split_held_out(pairs, 0.25, seed=3) == (train, held)
    assert split_held_out(pairs, 0.25, seed=4) != (train, held)
    with pytest.raises(UserError):
        split_held_out(pairs, 1.5)
    with pytest.raises(UserError):
        split_held_out(pairs[:1], 0.5)
