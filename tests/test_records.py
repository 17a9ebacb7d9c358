"""The one reader of JSON Lines / JSON-array record files behind instruction, preference and labelled data."""

from __future__ import annotations

import json

import pytest

from lm2llm.errors import UserError
from lm2llm.records import RecordError, read_records, read_text_file

RECORDS = [{"text": "대한민국은 민주공화국이다.", "label": "법"}, {"text": "def f(): pass", "label": "code"}]


def test_json_lines_and_json_array_give_the_same_records_with_their_lines(tmp_path):
    lines = tmp_path / "d.jsonl"
    lines.write_text("\n" + "\n\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS) + "\n", encoding="utf-8")
    array = tmp_path / "d.json"
    array.write_text(json.dumps(RECORDS, ensure_ascii=False, indent=2), encoding="utf-8")
    assert list(read_records(lines)) == [(2, RECORDS[0]), (4, RECORDS[1])]
    assert list(read_records(array)) == [(2, RECORDS[0]), (6, RECORDS[1])]


def test_a_bad_json_line_is_a_record_error_the_caller_may_skip(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "좋다"}\n{"text": \n{"text": "끝"}\n', encoding="utf-8")
    records = list(read_records(path))
    assert [line for line, _ in records] == [1, 2, 3]
    assert isinstance(records[1][1], RecordError) and "invalid JSON" in str(records[1][1])
    assert records[2][1] == {"text": "끝"}


def test_array_syntax_errors_and_unreadable_files_are_user_errors(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n {"a": 1}\n {"a": 2}]', encoding="utf-8")
    with pytest.raises(UserError) as info:
        list(read_records(path))
    assert info.value.where == f"{path}:3"
    with pytest.raises(UserError, match="preference file not found"):
        read_records(tmp_path / "nope.jsonl", "preference file")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(UserError, match=r"not UTF-8 text \(byte 3\)"):
        read_text_file(latin)
