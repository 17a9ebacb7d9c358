import json
import subprocess
import sys
import unicodedata

import pytest

from lm2llm.data import embedded, iter_documents, list_sources, load_documents
from lm2llm.data.clean import clean_text
from lm2llm.data.readers import ReadOptions
from lm2llm.errors import UserError
from tests.conftest import SRC


def test_registry_lists_the_embedded_corpora():
    names = {s.name for s in list_sources()}
    assert {"python-docs", "python-code", "korean-law"} <= names
    assert all(s.licence and s.description for s in list_sources())


def test_stdlib_listing_leaves_out_tests_and_third_party_code():
    root = embedded.stdlib_dir()
    parts = [p.relative_to(root).parts for p in embedded.stdlib_files()]
    assert len(parts) > 500 and ("json", "decoder.py") in parts
    assert not any({"test", "tests", "idle_test", "site-packages"} & set(p) for p in parts)


def test_python_docs_streams_with_a_limit_then_caches_a_complete_pass(monkeypatch):
    root = embedded.stdlib_dir()
    few = [root / "abc.py", root / "bisect.py", *sorted((root / "json").glob("*.py"))]
    monkeypatch.setattr(embedded, "stdlib_files", lambda: few)  # a complete pass in a fraction of a second
    monkeypatch.setattr(embedded, "_python_docs_memo", [])
    first = load_documents("python-docs", limit=100)
    assert len(first) == 100 and not embedded.python_docs_cache().exists()  # a partial pass caches nothing
    docs = list(iter_documents("python-docs"))
    assert embedded.python_docs_cache().is_file()
    origins = [d.origin for d in docs]
    assert origins[0] == "pydoc_data.topics:assert" and "json.decoder.JSONDecoder.decode" in origins
    assert origins.index("abc") < origins.index("bisect") < origins.index("json")  # sorted by module
    monkeypatch.setattr(embedded, "_python_docs_memo", [])  # the next pass reads the file
    assert [d.origin for d in iter_documents("python-docs")] == origins
    assert load_documents("python-docs", limit=100) == first


def test_python_code_is_the_stdlib_source_without_tests():
    docs = list(iter_documents("python-code"))
    origins = [d.origin for d in docs]
    assert len(origins) > 500 and len(set(origins)) == len(origins)
    assert "json.decoder" in origins and not any(o.startswith("test.") for o in origins)
    assert "def " in next(d.text for d in docs if d.origin == "json.decoder")


def test_korean_law_reads_konlpy_files_without_starting_java():
    code = (
        "import sys; from lm2llm.data import load_documents; docs = load_documents('korean-law');"
        "print(len(docs), '대한민국' in docs[0], sorted(m for m in sys.modules if 'konlpy' in m or 'jpype' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(SRC), "PATH": ""}, check=True).stdout.split()
    assert out == ["11", "True", "[]"]


def test_local_files_of_every_format(tmp_path):
    (tmp_path / "a.txt").write_text("첫 문서\r\n둘째 줄\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("# Title\n\nbody", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "줄 하나"}) + "\n\n" + json.dumps({"body": "two"}) + "\n")
    (tmp_path / "d.csv").write_text('q,a\n"안녕, 반가워",hi\nbye,"잘 가"\n', encoding="utf-8")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "e.tsv").write_text('id\tdocument\n1\t그는 "최고"라고\n', encoding="utf-8")
    (tmp_path / "ignored.bin").write_bytes(b"\0\1")
    options = ReadOptions(text_field="body", text_column="q")
    assert load_documents(str(tmp_path / "[a-d].*"), options=options) == [
        "첫 문서\n둘째 줄", "# Title\n\nbody", "줄 하나", "two", "안녕, 반가워", "bye"]
    assert load_documents(str(tmp_path / "d.csv"), options=ReadOptions(text_column="q")) == ["안녕, 반가워", "bye"]
    assert load_documents(str(tmp_path / "other"), options=ReadOptions(text_column="document")) == ['그는 "최고"라고']
    assert load_documents(str(tmp_path / "*.md")) == ["# Title\n\nbody"]


def test_bad_input_names_file_and_line(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_documents(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": broken\n{"other": 1}\n', encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_documents(str(bad))
    assert f"{bad}:2" in str(err.value) and "malformed JSON" in str(err.value)
    options = ReadOptions(skip_bad_rows=True)
    assert load_documents(str(bad), options=options) == ["ok"] and options.counts["bad_rows_skipped"] == 2
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("text,label\nfine,1\nshort\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"rows\.csv:3: row has 1 fields"):
        load_documents(str(csv_path))
    with pytest.raises(UserError, match="no column 'body'"):
        load_documents(str(csv_path), options=ReadOptions(text_column="body"))


def test_invalid_utf8_is_replaced_and_counted_or_strict_error(tmp_path):
    path = tmp_path / "broken.txt"
    path.write_bytes("한국어 ".encode() + b"\xff\xfe ok")
    options = ReadOptions()
    assert load_documents(str(path), options=options) == ["한국어 \ufffd\ufffd ok"]
    assert options.counts["invalid_utf8_sequences"] == 2
    with pytest.raises(UserError, match=r"broken\.txt: invalid UTF-8 at byte offset 10"):
        load_documents(str(path), options=ReadOptions(strict=True))


def test_binary_files_are_skipped_and_counted(tmp_path):
    (tmp_path / "image.txt").write_bytes(b"PNG\0\0\0data")
    (tmp_path / "real.txt").write_text("text", encoding="utf-8")
    options = ReadOptions()
    assert load_documents(str(tmp_path), options=options) == ["text"]
    assert options.counts["binary_files_skipped"] == 1 and options.counts["files"] == 2


def test_cleaning_nfc_controls_and_whitespace():
    decomposed = unicodedata.normalize("NFD", "한국어")
    cleaned = clean_text(f"  def f():\r\n\t{decomposed}\x07\u200b  \n\n\n\nend\u3000word \n")
    assert cleaned.text == "  def f():\n\t한국어\n\nend word" and cleaned.removed_chars == 2
    assert clean_text("\x00\n \n").text == ""
    assert clean_text("줄\u2028다음\u2029문단").text == "줄\n다음\n\n문단"


def test_cli_lists_sources_as_json(cli):
    result = cli("data", "sources", "--json")
    assert result.code == 0
    assert {"python-docs", "korean-law"} <= {s["name"] for s in json.loads(result.out)}
