"""Tokenizers: the from-scratch BPE equals HF tokenizers (merges and ids), HF format, chat template, streaming."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lm2llm.errors import UserError
from lm2llm.tokenizer import BPETokenizer, CharTokenizer, StreamDecoder, load_tokenizer
from lm2llm.tokenizer.bpe import ByteLevelBPE, pretokenize
from lm2llm.tokenizer.chat import END_OF_TURN, PAD, SPECIAL_TOKENS
from lm2llm.tokenizer.fast import to_scratch, train_fast
from lm2llm.tokenizer.stats import fertility

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away again and again.",
    "def tokenize(text: str) -> list[int]:\n    return [ord(ch) for ch in text]  # 1234567 chars\n\n\n",
    "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.",
    "모든 국민은 법 앞에 평등하다. 누구든지 성별·종교 또는 사회적 신분에 의하여 차별을 받지 아니한다.",
    "Tokenizers split text into pieces; pieces become ids.   Spaces\t\tand tabs\n\n\nand newlines too. 😀🇰🇷",
    "for i in range(10):\n\tprint(f'{i:>3} {i**2}')  # 한국어 주석\r\n",
] * 3
VOCAB = len(SPECIAL_TOKENS) + 256 + 150


@pytest.fixture(scope="module")
def trained() -> tuple[BPETokenizer, BPETokenizer]:
    fast = BPETokenizer.train(CORPUS, VOCAB, impl="fast")
    scratch = BPETokenizer.train(CORPUS, VOCAB, impl="scratch")
    return fast, scratch


def test_scratch_trainer_gives_the_identical_merge_list(trained):
    fast, scratch = trained
    from_library = to_scratch(fast.fast)
    assert scratch.scratch.merges == from_library.merges
    assert scratch.scratch.vocab == from_library.vocab
    assert len(scratch.scratch.merges) == VOCAB - len(SPECIAL_TOKENS) - 256


@pytest.mark.parametrize("min_frequency", [0, 3])
def test_identical_merges_with_min_frequency(min_frequency):
    ours = ByteLevelBPE.train(CORPUS, 1000, ["<s>"], min_frequency=min_frequency)
    theirs = to_scratch(train_fast(CORPUS, 1000, ["<s>"], min_frequency=min_frequency))
    assert ours.merges == theirs.merges and ours.vocab == theirs.vocab
    if min_frequency:
        assert ours.vocab_size < 1000  # stopped early: the best pair became rarer than min_frequency


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="ab 가나\n1é😀", min_size=1, max_size=40), min_size=1, max_size=6),
       st.integers(min_value=257, max_value=320))
def test_property_identical_merges_on_random_corpora(texts, vocab_size):
    # A tiny alphabet makes ties between pair counts common: the tie-breaking rule is what is tested.
    ours = ByteLevelBPE.train(texts, vocab_size, ["<s>"])
    theirs = to_scratch(train_fast(texts, vocab_size, ["<s>"]))
    assert ours.merges == theirs.merges and ours.vocab == theirs.vocab


def test_special_tokens_in_training_text_count_as_characters_like_the_library():
    texts = ["<|user|>hi there<|end|><|assistant|>hello<|end|><|endoftext|>"] * 5
    ours = ByteLevelBPE.train(texts, 300, SPECIAL_TOKENS)
    assert ours.merges == to_scratch(train_fast(texts, 300, SPECIAL_TOKENS)).merges
    assert b"<|" in ours.vocab


@pytest.mark.slow
def test_identical_merges_and_ids_on_python_docs_and_korean_law():
    from lm2llm.data import load_documents

    texts = load_documents("python-docs", limit=600) + load_documents("korean-law")
    train, held_out = texts[::2], texts[1::2]
    ours = ByteLevelBPE.train(train, 3000, SPECIAL_TOKENS)
    theirs = train_fast(train, 3000, SPECIAL_TOKENS)
    assert ours.merges == to_scratch(theirs).merges
    assert [ours.encode(t) for t in held_out] == [e.ids for e in theirs.encode_batch(held_out, add_special_tokens=False)]


def test_ties_go_to_the_smallest_pair_of_ids():
    # (a, b) and (x, y) both occur once; 'a' < 'x' so the library merges a+b first.
    ours = ByteLevelBPE.train(["xy ab"], 256 + 1)
    a, b = ours.byte_ids[ord("a")], ours.byte_ids[ord("b")]
    assert ours.merges == [(a, b)]
    assert to_scratch(train_fast(["xy ab"], 256 + 1)).merges == ours.merges


def test_pretokenization_keeps_hangul_words_whole():
    assert pretokenize("대한민국 헌법 제1조 hello") == [
        "대한민국", " 헌법", " 제", "1", "조", " hello"]
    assert pretokenize("x = 12345") == ["x", " =", " ", "123", "45"]


TEXTS = {
    "english": "Hello, world! It's a test of the tokenizer; we'll see.",
    "korean": "안녕하세요, 대한민국 헌법 제1조입니다. 모든 권력은 국민으로부터 나온다.",
    "code": "def f(x):\n    return {'a': x ** 2}  # comment\n",
    "emoji": "👩‍💻 loves 🇰🇷 and 😀😀😀",
    "whitespace": "a  b\t\t c\n\n\n   d    \r\n  ",
    "special": "<|system|>Be brief.<|end|><|user|>hi<|end|><|endoftext|><|endoftext|>x<|pad|>",
    "special_glued": "word<|end|>word <|end|> <|endoftext|>",
}


@pytest.mark.parametrize("name", TEXTS)
def test_both_encoders_give_identical_ids(trained, name):
    fast, scratch = trained
    text = TEXTS[name]
    ids = fast.encode(text)
    assert scratch.encode(text) == ids
    assert fast.decode(ids) == scratch.decode(ids) == text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=255), max_size=12))
def test_property_invalid_utf8_decodes_the_same(trained, raw):
    fast, scratch = trained
    ids = [scratch.scratch.byte_ids[b] for b in raw]
    assert scratch.decode(ids) == fast.decode(ids) == bytes(raw).decode("utf-8", errors="replace")


def test_special_tokens_are_single_ids_never_merged(trained):
    fast, _ = trained
    ids = fast.encode("a<|end|>b<|endoftext|>")
    assert fast.end_of_turn_id in ids and fast.eos_id in ids
    assert fast.end_of_turn_id != fast.pad_id
    assert fast.encode(END_OF_TURN) == [fast.end_of_turn_id]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(exclude_categories=("Cs", "Cn")), max_size=60))
def test_property_identical_ids_on_random_unicode(trained, text):
    fast, scratch = trained
    ids = fast.encode(text)
    assert scratch.encode(text) == ids
    assert scratch.decode(ids) == text
    assert "".join(pretokenize(text)) == text


def test_hugging_face_directory_loads_everywhere_with_same_ids(trained, tmp_path):
    import tokenizers
    import transformers

    fast, _ = trained
    fast.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["pad_token"] == PAD and "chat_template" in config
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    library = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in TEXTS.values():
        ids = fast.encode(text)
        assert hf.encode(text, add_special_tokens=False) == ids
        assert library.encode(text, add_special_tokens=False).ids == ids
    for impl in ("fast", "scratch"):
        loaded = load_tokenizer(tmp_path, impl=impl)
        assert loaded.vocab_size == fast.vocab_size
        assert loaded.encode(TEXTS["korean"]) == fast.encode(TEXTS["korean"])
    (tmp_path / "tokenizer_kind.json").unlink()  # a plain HF directory is recognised too
    assert isinstance(load_tokenizer(tmp_path), BPETokenizer)


CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "대한민국의 수도는?"},
    {"role": "assistant", "content": "서울입니다. Seoul."},
    {"role": "user", "content": "Thanks!"},
]


@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_chat_template_matches_transformers(trained, tmp_path, add_generation_prompt):
    import transformers

    fast, _ = trained
    fast.save(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ids, mask = fast.render_chat(CHAT, add_generation_prompt=add_generation_prompt)
    rendered = hf.apply_chat_template(CHAT, tokenize=True, add_generation_prompt=add_generation_prompt,
                                      return_dict=True, return_assistant_tokens_mask=True)
    assert rendered["input_ids"] == ids
    assert rendered["assistant_masks"] == mask
    assistant = [i for i, m in zip(ids, mask, strict=True) if m]
    assert fast.decode(assistant) == "서울입니다. Seoul.<|end|>"


def test_render_chat_rejects_bad_messages(trained):
    fast, _ = trained
    with pytest.raises(UserError, match="role"):
        fast.render_chat([{"role": "robot", "content": "x"}])
    with pytest.raises(UserError, match="special token"):
        fast.render_chat([{"role": "user", "content": "hi <|end|>"}])


def test_streaming_decode_never_emits_a_broken_character(trained):
    fast, scratch = trained
    text = "한국어 스트리밍 😀 héllo 韓國"
    for tokenizer in (fast, scratch):
        stream = StreamDecoder(tokenizer)
        pieces = [stream.push(i) for i in tokenizer.encode(text)]
        assert "".join(pieces) + stream.flush() == text
        assert "\ufffd" not in "".join(pieces)
        assert "" in pieces  # some Hangul syllable did span tokens
    stream = StreamDecoder(fast)
    first_byte, *_ = fast.encode("햏")  # a syllable the corpus lacks: three byte tokens
    assert stream.push(first_byte) == "" and stream.flush() == "\ufffd"
    chars = CharTokenizer.train(["가나다"])
    stream = StreamDecoder(chars)
    assert [stream.push(i) for i in chars.encode("나가")] == ["나", "가"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40))
def test_property_streaming_decode_equals_full_decode(trained, text):
    fast, _ = trained
    stream = StreamDecoder(fast)
    pieces = [stream.push(i) for i in fast.encode(text)]
    assert "".join(pieces) + stream.flush() == text
    assert all(piece.count("\ufffd") <= text.count("\ufffd") for piece in pieces)


def test_fertility_counts_korean_worse_for_english_only_vocab():
    english = [t for t in CORPUS if t.isascii()]
    english_only = BPETokenizer.train(english, VOCAB)
    mixed = BPETokenizer.train(CORPUS, VOCAB)
    korean = [t for t in CORPUS if not t.isascii()]
    ko_en = fertility(english_only, korean).by_language["ko"]
    ko_mixed = fertility(mixed, korean).by_language["ko"]
    assert ko_en.tokens_per_word > ko_mixed.tokens_per_word
    assert ko_en.bytes_per_token < ko_mixed.bytes_per_token


def test_saved_bpe_feeds_token_shards(trained, tmp_path):
    from lm2llm.data.shards import ShardWriter, TokenShards

    fast, _ = trained
    fast.save(tmp_path / "tok")
    tokenizer = load_tokenizer(tmp_path / "tok")
    writer = ShardWriter(tmp_path / "shards", tokenizer.vocab_size)
    for i, text in enumerate(CORPUS):
        writer.write("val" if i % 3 == 0 else "train", [*tokenizer.encode(text), tokenizer.eos_id])
    writer.close(tokenizer=tokenizer.kind)
    shards = TokenShards(tmp_path / "shards")
    stored = shards.arrays["train"].tolist()
    assert tokenizer.decode(stored).startswith(CORPUS[1])


def test_training_rejects_bad_settings():
    with pytest.raises(UserError, match="vocab_size"):
        BPETokenizer.train(CORPUS, 100)
    with pytest.raises(UserError, match="--impl"):
        BPETokenizer.train(CORPUS, VOCAB, impl="rust")


def test_cli_train_encode_decode_stats(cli, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    out = tmp_path / "tok"
    result = cli("tokenizer", "train", corpus, "--out", out, "--vocab-size", VOCAB, "--impl", "scratch", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["vocab_size"] == VOCAB
    assert {"tokenizer.json", "tokenizer_config.json", "training.json"} <= {p.name for p in out.iterdir()}
    encoded = cli("tokenizer", "encode", out, "안녕 world", "--json")
    ids = json.loads(encoded.out)["ids"]
    decoded = cli("tokenizer", "decode", out, *ids, "--json", "--impl", "scratch")
    assert json.loads(decoded.out)["text"] == "안녕 world"
    stats = cli("tokenizer", "stats", out, "--source", corpus, "--json")
    languages = json.loads(stats.out)["sources"][str(corpus)]["by_language"]
    assert {"ko", "en"} <= set(languages)
    again = cli("tokenizer", "train", corpus, "--out", out)
    assert again.code == 2 and "earlier lm2llm tokenizer output" in again.err
    bad = cli("tokenizer", "decode", out, "999999")
    assert bad.code == 2 and "outside" in bad.err
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    not_utf8 = cli("tokenizer", "encode", out, "--file", latin1)
    assert not_utf8.code == 2 and "UTF-8" in not_utf8.err


def test_tour_chapter_4_2_measures_its_claims(cli, tmp_path):
    result = cli("tour", "--quick", "--only", "4.2", "--out", tmp_path, "--json")
    assert result.code == 0, result.err
    saved = json.loads((tmp_path / "ch04_02" / "result.json").read_text(encoding="utf-8"))
    metrics = saved["metrics"]
    assert metrics["korean_length_ratio"] > 1.0
    assert metrics["korean_attention_ratio"] == pytest.approx(metrics["korean_length_ratio"] ** 2)
    assert len(saved["claims"]) == 5 and (tmp_path / "ch04_02" / "korean_fertility.png").is_file()
    own = metrics["own_vocabulary"]  # each language with a BPE of its own: the Korean track
    assert own["ko"]["tokens_per_word"] / own["en"]["tokens_per_word"] == pytest.approx(metrics["own_vocabulary_gap"], rel=1e-3)
    assert "⟨" in saved["samples"][0]["text"]  # Hangul split into byte pieces by the English-only vocabulary
