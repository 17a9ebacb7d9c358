import hashlib
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lm2llm.data.card import funnel_rows
from lm2llm.data.dedup import (
    ExactDeduplicator,
    MinHasher,
    NearDuplicateIndex,
    candidate_probability,
    jaccard,
    optimal_bands,
    shingles,
)
from lm2llm.data.pii import (
    PII_TYPES,
    evaluate_detector,
    find_pii,
    labelled_examples,
    luhn_is_valid,
    rrn_is_valid,
    scrub,
)
from lm2llm.data.prepare import PrepareConfig, prepare, split_of
from lm2llm.data.quality import QualityConfig, reject_reason
from lm2llm.data.shards import TokenShards
from lm2llm.errors import UserError
from lm2llm.tokenizer import load_tokenizer

KOREAN = "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다. "


def test_minhash_estimates_jaccard_within_sampling_error():
    """The estimate is a mean of num_perm Bernoulli(J) draws: it must sit within 4 standard errors."""
    rng = np.random.default_rng(0)
    hasher = MinHasher(num_perm=256, seed=3)
    for overlap in (0.2, 0.5, 0.8, 0.95):
        universe = rng.choice(2**32 - 1, size=4000, replace=False).astype(np.uint64)
        shared = int(2000 * overlap)
        a, b = universe[:2000], np.concatenate([universe[:shared], universe[2000 : 4000 - shared]])
        exact = jaccard(a, b)
        estimate = float(np.mean(hasher.signature(a) == hasher.signature(b)))
        assert abs(estimate - exact) <= 4 * np.sqrt(exact * (1 - exact) / 256) + 1e-9


def test_lsh_banding_is_a_steep_curve_around_the_threshold():
    bands, rows = optimal_bands(0.8, 128)
    assert bands * rows <= 128
    assert candidate_probability(0.5, bands, rows) < 0.1 < 0.9 < candidate_probability(0.9, bands, rows)


def test_shingles_word_and_char_korean():
    assert len(shingles("a b c d e f", "word", 5)) == 2
    assert len(shingles("짧은", "word", 5)) == 1  # shorter than one shingle: the whole text is one
    assert len(shingles("한국어한국어", "char", 3)) == 3  # 한국어, 국어한, 어한국
    assert shingles("", "char", 3).size == 0
    with pytest.raises(ValueError):
        shingles("x", "byte")


def test_exact_and_near_duplicates():
    exact = ExactDeduplicator()
    assert exact.first_seen(KOREAN, "a") is None and exact.first_seen(KOREAN, "b") == "a"
    index = NearDuplicateIndex(threshold=0.8, shingle="char", shingle_size=4)
    base = KOREAN * 3 + "제1조 국가는 개인이 가지는 불가침의 기본적 인권을 확인하고 이를 보장할 의무를 진다."
    assert index.match(base, "original") is None
    edited = base.replace("의무를 진다", "의무가 있다")
    match = index.match(edited, "edited")
    assert match is not None and match[0] == "original" and match[1] >= 0.8
    assert index.match("The quick brown fox jumps over the lazy dog again and again.", "english") is None


def test_pii_precision_and_recall_per_type_on_the_labelled_set():
    examples = labelled_examples()
    assert {e["lang"] for e in examples} == {"en", "ko"}
    assert sum(not e["pii"] for e in examples) >= 15  # look-alikes that must survive
    scores = evaluate_detector(examples)
    report = {kind: (round(s.precision, 3), round(s.recall, 3)) for kind, s in scores.items()}
    print("PII precision/recall per type:", report)
    for kind in PII_TYPES:
        assert scores[kind].true_positives >= 4, kind
        assert scores[kind].precision >= 0.8 and scores[kind].recall >= 0.8, (kind, report[kind])


def test_pii_on_real_text_counts_false_positives_once_per_labelled_string():
    from lm2llm.data.pii_corpus import LABELS, corpus_examples, score_candidates, snippets

    examples = corpus_examples()
    assert {e["source"] for e in examples} == {"python-docs", "korean-law"}
    assert sorted(e["candidate"] for e in examples) == sorted(LABELS)  # every labelled string, once
    scores, personal = score_candidates(examples)
    assert scores["IPV4"].false_positives >= 10 and scores["IPV4"].precision < 0.8  # 7.1.4.34, netmasks, ...
    assert scores["EMAIL"].false_positives == 1 and scores["PHONE"].true_positives == 1
    assert personal["found"] == personal["labelled"] >= 10
    rows = snippets({"python-docs": ["The fileset version is 7.1.4.34 today; mail gward@python.net."]})
    assert [(r["candidate"], r["pii"]) for r in rows] == [("7.1.4.34", [["EMAIL", "gward@python.net"]]),
                                                           ("gward@python.net", [["EMAIL", "gward@python.net"]])]
    with pytest.raises(KeyError, match="not labelled"):
        snippets({"python-docs": ["write to new.person@example.org"]})


def test_scrub_replaces_with_typed_placeholders_and_counts():
    text, counts = scrub("홍길동(010-2222-3333, hong@example.kr), 카드 4111 1111 1111 1111, 서버 10.0.0.1.")
    assert text == "홍길동(<PHONE>, <EMAIL>), 카드 <CARD>, 서버 <IPV4>."
    assert counts == {"PHONE": 1, "EMAIL": 1, "CARD": 1, "IPV4": 1}
    assert rrn_is_valid("900101-1234568") and not rrn_is_valid("900101-1234569")
    assert luhn_is_valid("4111111111111111") and not luhn_is_valid("4111111111111112")
    assert find_pii("버전 3.11.7, 2024-03-15") == []


def test_quality_rules_name_the_reason():
    config = QualityConfig(min_chars=10, max_chars=200)
    assert reject_reason("short", config) == "too_short"
    assert reject_reason("x" * 300, config) == "too_long"
    assert reject_reason("#$%^&*()!@#$%^&*" * 2, config) == "symbol_ratio"
    assert reject_reason("같은 줄\n같은 줄\n같은 줄\n다른 줄", config) == "repeated_lines"
    assert reject_reason(KOREAN, config) is None


def test_split_is_deterministic_by_content():
    texts = [f"문서 {i} document" for i in range(2000)]
    splits = [split_of(t, 0.1) for t in texts]
    assert splits == [split_of(t, 0.1) for t in texts]
    assert 0.07 < splits.count("val") / len(texts) < 0.13


def _corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    law = KOREAN * 4
    docs = {
        "law.txt": law + "\n문의: 010-1234-5678, clerk@assembly.example.kr",
        "law_copy.txt": law + "\n문의: 010-1234-5678, clerk@assembly.example.kr",  # exact duplicate
        "law_edit.txt": law + "\n문의: 010-1234-5678, clerk@assembly.example.kr 입니다",  # near duplicate
        "short.txt": "짧다",
        "symbols.txt": "!@#$%^&*()_+{}|:<>?~" * 5,
        "empty.md": "\x00".replace("\x00", "") + " \n\t\n",
        "english.md": "Python is a programming language that lets you work quickly. " * 3,
    }
    for i in range(30):
        docs[f"note{i:02d}.txt"] = f"노트 {i}번: 오늘 배운 내용은 n-gram 언어 모델의 확률 {i * 7919} 계산입니다. " * 2
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "picture.txt").write_bytes(b"\x89PNG\0\0binary")
    return folder


def test_prepare_accounts_for_every_document_and_writes_shards(tmp_path):
    out = tmp_path / "prepared"
    corpus = _corpus(tmp_path)
    stats = prepare(PrepareConfig(str(corpus), val_fraction=0.2), out)
    f = stats.funnel
    assert (f.documents_in, f.empty, f.exact_duplicates, f.near_duplicates) == (37, 1, 1, 1)
    assert dict(f.filtered) == {"too_short": 1, "symbol_ratio": 1} and f.balanced() and f.out == 32
    assert stats.read["binary_files_skipped"] == 1 and stats.pii == {"PHONE": 1, "EMAIL": 1}
    assert {p.name for p in tmp_path.iterdir()} == {"corpus", "prepared"}  # no temporary directory left
    documents = [json.loads(line) for line in (out / "documents.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(documents) == 32 and any("<PHONE>" in d["text"] for d in documents)
    shards = TokenShards(out)
    tokenizer = load_tokenizer(out / "tokenizer")
    for split in ("train", "val"):
        expected = "".join(d["text"] + "\n\n" for d in documents if d["split"] == split)
        assert tokenizer.decode(shards.arrays[split].tolist()) == expected
    assert shards.meta["documents"] == {"train": f.train, "val": f.val} and shards.meta["dtype"] == "uint16"
    first = shards.random_batch("train", 4, 16, torch.Generator().manual_seed(7))
    again = shards.random_batch("train", 4, 16, torch.Generator().manual_seed(7))
    assert torch.equal(first[0], again[0]) and torch.equal(first[0][:, 1:], first[1][:, :-1])
    card = (out / "DATASET.md").read_text(encoding="utf-8")
    assert "| deduplicated | 34 | 2 | 1 exact, 1 near duplicates |" in card and "| PHONE | 1 |" in card
    first_input = sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix in (".txt", ".jsonl", ".csv"))[0]
    assert hashlib.sha256(first_input.read_bytes()).hexdigest() in card  # provenance: every input by sha256
    assert "| provenance | local files (no ATTRIBUTION file) |" in card
    saved = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert saved["funnel"]["balanced"] and [r[1] for r in funnel_rows(saved["funnel"])] == [37, 36, 34, 32, 32]


def test_prepare_refuses_bad_outputs_and_leaves_nothing_half_written(tmp_path):
    corpus = _corpus(tmp_path)
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        prepare(PrepareConfig(str(corpus)), out)
    with pytest.raises(UserError, match="did not write"):  # --force never replaces a folder we did not write
        prepare(PrepareConfig(str(corpus)), out, force=True)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    first = prepare(PrepareConfig(str(corpus)), out)
    with pytest.raises(UserError, match="earlier lm2llm dataset output.*--force"):
        prepare(PrepareConfig(str(corpus)), out)
    with pytest.raises(UserError, match="empty after cleaning, dedup and filtering"):
        prepare(PrepareConfig(str(corpus), quality=QualityConfig(min_chars=10**6)), out, force=True)
    (corpus / "broken.txt").write_bytes(b"valid \xff invalid")
    with pytest.raises(UserError, match=r"broken\.txt: invalid UTF-8 at byte offset 6"):
        prepare(PrepareConfig(str(corpus), strict=True), out, force=True)
    assert json.loads((out / "stats.json").read_text())["seconds"] == first.seconds  # the old output survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "prepared"]
    prepare(PrepareConfig(str(corpus)), out, force=True)
    assert (out / "meta.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "prepared"]


def test_cli_prepare_and_stats(cli, tmp_path):
    corpus = _corpus(tmp_path)
    out = tmp_path / "ds"
    result = cli("data", "prepare", corpus, "--out", out, "--shingle", "char", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["funnel"]["stages"]["out"] == 32
    stats = cli("data", "stats", out, "--json")
    assert stats.code == 0 and json.loads(stats.out)["pii"] == {"PHONE": 1, "EMAIL": 1}
    table = cli("data", "stats", out)
    assert "deduplicated" in table.out and "PHONE 1" in table.out
    bad = cli("data", "prepare", tmp_path / "nope", "--out", tmp_path / "x")
    assert bad.code == 2 and "no such file" in bad.err and not (tmp_path / "x").exists()


def test_minhash_signatures_and_lsh_bands_match_datasketch():
    """Given datasketch's permutations and shingle hashes, our signatures are identical ("legacy" scheme)."""
    datasketch = pytest.importorskip("datasketch")
    from datasketch.hashfunc import sha1_hash32

    words = [f"word{i}" for i in range(300)] + [f"한국어 {i}" for i in range(40)]
    reference = datasketch.MinHash(num_perm=128, seed=1, scheme="legacy")
    reference.update_batch([w.encode() for w in words])
    ours = MinHasher(128)
    ours.a, ours.b = (p.astype(np.uint64) for p in reference.permutations)
    hashes = np.array([sha1_hash32(w.encode()) for w in words], dtype=np.uint64)
    assert np.array_equal(ours.signature(hashes, chunk=100), reference.hashvalues)
    for threshold in (0.5, 0.7, 0.8, 0.9):
        lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=128)
        assert optimal_bands(threshold, 128) == (lsh.b, lsh.r)


def test_prepare_with_a_saved_bpe_tokenizer_ends_documents_with_eos(tmp_path):
    from lm2llm.tokenizer.hf_bpe import BPETokenizer

    corpus = _corpus(tmp_path)
    tokenizer = BPETokenizer.train([KOREAN, "Python is a programming language."] * 5, vocab_size=300)
    tokenizer.save(tmp_path / "bpe")
    out = tmp_path / "bpe-data"
    stats = prepare(PrepareConfig(str(corpus), tokenizer=str(tmp_path / "bpe")), out)
    shards = TokenShards(out)
    ids = np.concatenate([shards.arrays["train"], shards.arrays["val"]])
    assert shards.meta["tokenizer"] == "bpe" and shards.meta["separator"] == "eos"
    assert int((ids == tokenizer.eos_id).sum()) == stats.funnel.out
    assert load_tokenizer(out / "tokenizer").encode(KOREAN) == tokenizer.encode(KOREAN)
    with pytest.raises(UserError):
        prepare(PrepareConfig(str(corpus), tokenizer=str(tmp_path / "missing")), tmp_path / "never")
    assert not (tmp_path / "never").exists()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["010", "1234", "5678", "-", " ", ".", "+82", "(", ")", "@", "a", "kr", "가",
                                 "900101", "1234568", "4111", "192", "0", "_", "\n", "com", "x.y"]), max_size=30))
def test_windowed_pii_search_equals_the_full_scan(pieces):
    text = "".join(pieces)
    assert find_pii(text) == find_pii(text, scan_all=True)


def test_windowed_pii_search_equals_the_full_scan_on_corpora():
    from lm2llm.data import load_documents

    texts = [e["text"] for e in labelled_examples()] + load_documents("korean-law") + load_documents(
        "python-docs", limit=1500)
    assert [find_pii(t) for t in texts] == [find_pii(t, scan_all=True) for t in texts]
