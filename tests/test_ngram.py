"""N-gram models: lmplz equality (fixtures), KenLM scoring equality, estimators, limits, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lm2llm.errors import UserError
from lm2llm.ngram import (
    NgramConfig,
    evaluate,
    generate,
    load,
    read_arpa,
    save,
    sentence_scores,
    train,
    write_arpa,
)
from lm2llm.ngram.limits import long_range_probe, perplexity_by_order, unseen_shares
from lm2llm.ngram.model import count
from lm2llm.ngram.vocab import split_whitespace, split_words

FIXTURES = Path(__file__).parent / "fixtures" / "kenlm"

KOREAN = [
    "오늘 날씨 가 정말 좋다",
    "내일 은 비 가 온다고 한다",
    "나는 오늘 학교 에 간다",
    "언어 모델 은 다음 단어 를 예측 한다",
    "오늘 은 학교 에 가지 않는다",
    "비 가 오면 나는 집 에 있다",
] * 3 + ["모델 이 단어 를 예측 한다", "날씨 가 좋으면 학교 에 간다"]
ENGLISH = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog met on the mat",
    "the bird sang on the tree",
    "a dog chased the cat up the tree",
] * 3 + ["the cat sang", "a bird met the dog"]


def arpa_entries(path: Path) -> dict[str, tuple[float, float]]:
    """n-gram text -> (log10 p, log10 backoff), parsed independently of our reader."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            out[fields[1]] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else 0.0)
    return out


@pytest.mark.parametrize(("text", "arpa", "order", "fallback"), [
    ("en.txt", "en.o3.arpa", 3, False),
    ("ko.txt", "ko.o4.fallback.arpa", 4, True),
])
def test_kneser_ney_equals_lmplz(tmp_path, text, arpa, order, fallback):
    lines = (FIXTURES / text).read_text(encoding="utf-8").splitlines()
    model = train(lines, NgramConfig(order=order, discount_fallback=fallback))
    write_arpa(model.lm, tmp_path / "ours.arpa")
    ours, theirs = arpa_entries(tmp_path / "ours.arpa"), arpa_entries(FIXTURES / arpa)
    assert ours.keys() == theirs.keys()
    assert max(abs(ours[g][0] - theirs[g][0]) for g in theirs) < 1e-5  # lmplz computes in float32
    assert max(abs(ours[g][1] - theirs[g][1]) for g in theirs) < 1e-5


def test_lmplz_quirk_is_needed():
    """en.txt ends with a line that makes lmplz's last-entry statistic differ from the textbook one."""
    from lm2llm.ngram.estimators.kneser_ney import adjusted_counts, count_of_counts

    lines = (FIXTURES / "en.txt").read_text(encoding="utf-8").splitlines()
    counts = count(lines, NgramConfig(order=3))
    adjusted = adjusted_counts(counts)
    textbook = [np.bincount(np.minimum(a[a > 0], 5), minlength=6)[:5] for a in adjusted]
    assert any((t != q).any() for t, q in zip(textbook, count_of_counts(counts, adjusted), strict=True))


def test_reader_loads_lmplz_arpa_and_scores_like_kenlm():
    kenlm = pytest.importorskip("kenlm")
    path = FIXTURES / "ko.o4.fallback.arpa"
    model = read_arpa(path)
    assert model.order == 4 and "<unk>" in model.vocab.index
    reference = kenlm.Model(str(path))
    held = ["오늘 날씨 가 좋다", "처음 보는 낱말 들", ""]
    from lm2llm.ngram.model import NgramModel

    ours = sentence_scores(NgramModel(NgramConfig(order=4), model), held)
    assert np.allclose(ours, [reference.score(s, bos=True, eos=True) for s in held], atol=1e-4)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
@pytest.mark.parametrize("corpus", ["en", "ko"])
def test_kenlm_loads_our_arpa_and_scores_equal(tmp_path, order, corpus):
    kenlm = pytest.importorskip("kenlm")
    lines = (FIXTURES / f"{corpus}.txt").read_text(encoding="utf-8").splitlines()
    train_lines, held = lines[:-40], lines[-40:] + ["완전히 새로운 unseen 문장", ""]
    model = train(train_lines, NgramConfig(order=order, discount_fallback=True))
    write_arpa(model.lm, tmp_path / "m.arpa")
    reference = kenlm.Model(str(tmp_path / "m.arpa"))
    expected = np.array([reference.score(s, bos=True, eos=True) for s in held])
    assert np.abs(sentence_scores(model, held) - expected).max() < 1e-4
    ours = evaluate(model, held)
    words = sum(len(split_whitespace(s)) + 1 for s in held)
    assert ours.tokens == words
    assert math.isclose(ours.perplexity, 10 ** (-expected.sum() / words), rel_tol=1e-5)


def test_arpa_round_trip(tmp_path):
    model = train(KOREAN, NgramConfig(order=3, discount_fallback=True))
    write_arpa(model.lm, tmp_path / "a.arpa")
    back = read_arpa(tmp_path / "a.arpa")
    for ours, theirs in zip(model.lm.log10_probs, back.log10_probs, strict=True):
        assert np.allclose(ours, theirs, atol=1e-6)


def test_bad_arpa_is_a_clear_error(tmp_path):
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n", encoding="utf-8")
    with pytest.raises(UserError, match="end"):
        read_arpa(tmp_path / "bad.arpa")


def test_discounts_fail_clearly_without_fallback():
    with pytest.raises(UserError, match="discount-fallback"):
        train(["a b c", "a b c"], NgramConfig(order=3))


def test_mle_and_add_k_are_distributions():
    for estimator, k in (("mle", 0.0), ("add-k", 1.0), ("add-k", 0.1)):
        model = train(ENGLISH, NgramConfig(order=3, estimator=estimator, k=k or 1.0))
        for context in ([1], [1, 3], [1, 3, 4]):
            probs = 10 ** model.lm.next_log10_probs(context)
            assert math.isclose(probs.sum(), 1.0, rel_tol=1e-9)
    mle = train(ENGLISH, NgramConfig(order=2, estimator="mle"))
    # p(cat | the) = c(the cat) / c(the .)
    the = [w for s in ENGLISH for w in zip(s.split(), s.split()[1:], strict=False) if w[0] == "the"]
    expected = sum(1 for w in the if w[1] == "cat") / len(the)
    probs = 10 ** mle.lm.next_log10_probs([1, mle.vocab.index["the"]])
    assert math.isclose(probs[mle.vocab.index["cat"]], expected)


def test_kneser_ney_next_distribution_sums_to_one_and_matches_scoring():
    model = train(KOREAN, NgramConfig(order=3, discount_fallback=True))
    index = model.vocab.index
    context = [1, index["오늘"], index["날씨"]]
    probs = model.lm.next_log10_probs(context)
    assert math.isclose((10 ** probs[np.arange(len(probs)) != 1]).sum(), 1.0, rel_tol=1e-6)
    tokens, starts = model.encode(["오늘 날씨 가"])
    assert math.isclose(model.lm.token_log10_probs(tokens, starts)[2], probs[index["가"]], rel_tol=1e-9)


def test_stupid_backoff_scores():
    model = train(ENGLISH, NgramConfig(order=2, estimator="stupid-backoff"))
    tokens, starts = model.encode(["the cat"])
    scores = model.lm.token_log10_probs(tokens, starts)
    vocab = model.vocab.index
    counts = model.lm.counts
    assert math.isclose(10 ** scores[0], counts.counts[1][counts.lookup(2, np.array([1]), np.array([vocab["the"]]))[0]]
                        / (counts.counts[0][2]))  # c(<s> the) / c(<s> .) = that over sentences
    with pytest.raises(UserError, match="scores"):
        generate(model, "the")


def test_tokenisers():
    assert split_whitespace("a\u3000b  c\t") == ["a\u3000b", "c"]  # KenLM splits on ASCII whitespace only
    assert split_words("안녕, 세상!") == ["안녕", ",", "세상", "!"]


def test_generation_is_seeded_and_uses_the_vocabulary():
    model = train(KOREAN, NgramConfig(order=3, discount_fallback=True))
    a = generate(model, "오늘", seed=1, top_k=5, max_words=10)
    assert a == generate(model, "오늘", seed=1, top_k=5, max_words=10)
    assert all(w in model.vocab.index for w in a.split())
    greedy = generate(model, "언어 모델", temperature=0, max_words=10)
    assert greedy.startswith("은 다음 단어 를 예측 한다")


def test_save_load_every_estimator(tmp_path):
    for estimator in ("kneser-ney", "mle", "add-k", "stupid-backoff"):
        model = train(ENGLISH, NgramConfig(order=3, estimator=estimator, discount_fallback=True))
        save(model, tmp_path / estimator)
        again = load(tmp_path / estimator)
        held = ["the cat sat on the log", "a bird sang"]
        assert np.allclose(sentence_scores(model, held), sentence_scores(again, held), atol=1e-6)


def test_counting_matches_a_plain_counter():
    lines = (FIXTURES / "en.txt").read_text(encoding="utf-8").splitlines()
    counts = count(lines, NgramConfig(order=4))
    from collections import Counter

    expected = Counter()
    for line in lines:
        words = ["<s>", *split_whitespace(line), "</s>"]
        expected.update(tuple(words[i:i + 4]) for i in range(len(words) - 3))
    words = np.array(counts.vocab.words, dtype=object)
    grams = [tuple(row) for row in words[counts.words_of(4, np.arange(len(counts.keys[3])))]]
    assert dict(zip(grams, counts.counts[3].tolist(), strict=True)) == dict(expected)


def test_limits_are_measured():
    lines = (FIXTURES / "en.txt").read_text(encoding="utf-8").splitlines()
    train_lines, test_lines = lines[:300], lines[300:]
    shares = unseen_shares(train_lines, test_lines, 4)
    assert shares == sorted(shares) and shares[-1] > 0.8
    sweep = perplexity_by_order(train_lines, test_lines, [1, 2, 3])
    assert sweep.zero_share["mle"][2] > 0.3 and sweep.zero_share["kneser-ney"] == [0.0, 0.0, 0.0]
    probe = long_range_probe([3, 5], gap=3)
    assert probe[3] < 0.7 and probe[5] > 0.95


def test_cli_train_eval_generate_export(cli, tmp_path):
    corpus = tmp_path / "train.txt"
    corpus.write_text("\n".join(KOREAN), encoding="utf-8")
    run = tmp_path / "run"
    result = cli("ngram", "train", corpus, "--out", run, "--order", "3", "--discount-fallback", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["ngrams"][0] == len(load(run).vocab)
    result = cli("ngram", "eval", run, "--text", corpus, "--json")
    assert result.code == 0 and json.loads(result.out)["perplexity"] > 1
    result = cli("ngram", "generate", run, "--prompt", "오늘", "--seed", "0", "--json")
    assert result.code == 0 and "text" in json.loads(result.out)
    result = cli("ngram", "export-arpa", run, "--out", tmp_path / "m.arpa", "--json")
    assert result.code == 0 and read_arpa(tmp_path / "m.arpa").order == 3
    result = cli("ngram", "train", corpus, "--out", tmp_path / "r2", "--order", "9")
    assert result.code == 2 and "order" in result.err


@pytest.mark.slow
def test_tour_chapter_1_1_quick(cli, tmp_path):
    result = cli("tour", "--quick", "--only", "1.1", "--out", tmp_path, "--json")
    assert result.code == 0, result.err
    chapter = json.loads((tmp_path / "ch01_01" / "result.json").read_text(encoding="utf-8"))
    metrics = chapter["metrics"]
    assert metrics["unseen_share"] == sorted(metrics["unseen_share"])
    assert len(chapter["samples"]) == 5 and {"perplexity_by_order.png", "sparsity.png"} <= {
        f["path"] for f in chapter["figures"]}
    assert all(claim["statement"]["ko"] for claim in chapter["claims"])
    korean = metrics["korean_track"]  # English and Korean on the same number of training characters
    assert set(korean) == {"English (python-docs)", "Korean (korean-law)"}
    assert all(0 < lang["bits_per_byte"] <= lang["bits_per_char"] for lang in korean.values())


def test_vocabulary_limits_map_rare_words_to_unk():
    model = train(KOREAN, NgramConfig(order=2, min_count=2, discount_fallback=True))
    assert "좋으면" not in model.vocab.index  # seen once
    small = train(KOREAN, NgramConfig(order=2, max_vocab=8, discount_fallback=True))
    assert len(small.vocab) == 8
    assert evaluate(small, ["처음 보는 말"]).oov == 3
    with pytest.raises(UserError, match="max_vocab"):
        NgramConfig(max_vocab=2)


def test_kneser_ney_stays_normalised_after_unk():
    model = train(KOREAN, NgramConfig(order=3, min_count=2, discount_fallback=True))
    tokens, _ = model.encode(KOREAN)
    assert (tokens == 0).any()  # <unk> is in the training text
    for context in ([1, 0], [1, model.vocab.index["날씨"], 0]):
        probs = 10 ** model.lm.next_log10_probs(context)
        assert math.isclose(probs.sum() - probs[1], 1.0, rel_tol=1e-6)


def test_bpe_ids_as_tokens(tmp_path):
    from lm2llm.tokenizer import BPETokenizer

    BPETokenizer.train(KOREAN + ENGLISH, vocab_size=300).save(tmp_path / "bpe")
    config = NgramConfig(order=3, tokenize=f"bpe:{tmp_path / 'bpe'}", discount_fallback=True)
    model = train(KOREAN + ENGLISH, config)
    assert all(w.isdigit() for w in model.vocab.words[3:])
    assert np.isfinite(evaluate(model, ["오늘 날씨"]).perplexity)
    assert isinstance(generate(model, "오늘", seed=0, max_words=5), str)
    with pytest.raises(UserError, match="not found"):
        NgramConfig(tokenize=f"bpe:{tmp_path / 'missing'}")
