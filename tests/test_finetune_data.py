import json

import pytest

from lm2llm.errors import UserError
from lm2llm.finetune.data import load_instructions


def write_jsonl(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records) + "\n",
                    encoding="utf-8")
    return path


CHAT = {"messages": [
    {"role": "system", "content": "간결하게 답하세요."},
    {"role": "user", "content": "서울은 어느 나라의 수도인가요?"},
    {"role": "assistant", "content": "대한민국"},
]}
ALPACA = {"instruction": "Translate to Korean.", "input": "thank you", "output": "감사합니다"}


def test_chat_and_alpaca_records_normalise_to_messages(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [CHAT, "", {"instruction": "Say hi.", "output": "hi"}, ALPACA])
    data = load_instructions(path)
    assert data.skipped == []
    assert data.conversations[0] == CHAT["messages"]
    assert data.conversations[1] == [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]
    assert data.conversations[2] == [
        {"role": "user", "content": "Translate to Korean.\n\nthank you"},
        {"role": "assistant", "content": "감사합니다"},
    ]


@pytest.mark.parametrize(("record", "field"), [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}, "messages[1].role"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 3}]}, "messages[1].content"),
    ({"messages": [{"role": "user", "content": "안녕"}]}, "messages"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"},
                   {"role": "assistant", "content": "c"}]}, "messages[1].role"),
    ({"instruction": "Do it.", "output": ""}, "output"),
    ({"instruction": "Do it.", "input": 5, "output": "ok"}, "input"),
    ({"output": "ok"}, "instruction"),
])
def test_malformed_record_names_file_line_and_field(tmp_path, record, field):
    path = write_jsonl(tmp_path / "d.jsonl", [CHAT, record])
    with pytest.raises(UserError) as info:
        load_instructions(path)
    assert info.value.where == f"{path}:2"
    assert f"'{field}'" in str(info.value)


def test_skip_invalid_counts_and_keeps_the_rest(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [CHAT, '{"messages": [', {"text": "no fields"}, ALPACA])
    data = load_instructions(path, skip_invalid=True)
    assert len(data.conversations) == 2
    assert [s.split(": ")[0] for s in data.skipped] == [f"{path}:2", f"{path}:3"]
    with pytest.raises(UserError, match="invalid JSON"):
        load_instructions(path)


def test_json_array_reports_the_line_of_the_bad_record(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([ALPACA, ALPACA, {"instruction": "x"}], indent=2, ensure_ascii=False), encoding="utf-8")
    starts = [i + 1 for i, text in enumerate(path.read_text(encoding="utf-8").splitlines()) if text == "  {"]
    with pytest.raises(UserError) as info:
        load_instructions(path)
    assert info.value.where == f"{path}:{starts[2]}" and "'output'" in str(info.value)
    assert len(load_instructions(path, skip_invalid=True).conversations) == 2


def test_json_array_syntax_error_is_not_skippable(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n {"instruction": "a", "output": "b"}\n {"instruction": "c"}]', encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_instructions(path, skip_invalid=True)
    assert info.value.where == f"{path}:3"


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_instructions(tmp_path / "nope.jsonl")
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="no usable"):
        load_instructions(empty)


def test_real_alpaca_file_loads(shared_data):
    path = shared_data / "instructions-en" / "instruction-data.json"
    if not path.is_file():
        pytest.skip("instruction-data.json is absent")
    data = load_instructions(path)
    assert len(data.conversations) == 1100 and not data.skipped
    assert all([m["role"] for m in conv] == ["user", "assistant"] for conv in data.conversations)
    assert data.conversations[1][0]["content"] == "Edit the following sentence for grammar.\n\nHe go to the park every day."
