"""Sequence classification: metrics equal scikit-learn's, labelled data, the CLI end to end, NSMC."""

from __future__ import annotations

import json
import random

import pytest

from lm2llm.classify.data import docstring_families, nsmc, read_labelled, stdlib_packages
from lm2llm.classify.metrics import classification_report
from lm2llm.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread", "known_peak")


def test_metrics_equal_scikit_learn():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    rng = random.Random(0)
    truth = [rng.randrange(4) for _ in range(300)]
    predicted = [t if rng.random() < 0.6 else rng.randrange(3) for t in truth]  # label 3 is never predicted
    report = classification_report(truth, predicted, ["a", "b", "c", "d"])
    assert report["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-12)
    assert report["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0), abs=1e-12)
    assert report["confusion"] == confusion_matrix(truth, predicted, labels=range(4)).tolist()


def test_labelled_files_and_their_errors(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text('id\tdocument\tlabel\n1\t정말 "재밌다\t1\n2\tboring\t0\n3\t \t1\n', encoding="utf-8")
    data = read_labelled(path, "document", "label")
    assert data.texts == ['정말 "재밌다', "boring"] and data.names == ["0", "1"] and data.labels == [1, 0]
    with pytest.raises(UserError, match="no column 'text'") as info:
        read_labelled(path)
    assert info.value.where.endswith("reviews.tsv:1")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": "x"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(UserError) as info:
        read_labelled(bad)
    assert info.value.where.endswith("bad.jsonl:2")
    array = tmp_path / "reviews.json"
    array.write_text('[{"text": "좋아요", "label": "pos"},\n {"text": "별로", "label": "neg"}]', encoding="utf-8")
    data = read_labelled(array)
    assert data.texts == ["좋아요", "별로"] and data.names == ["neg", "pos"] and data.labels == [1, 0]


def test_docstring_families_are_real_balanced_package_labels():
    data = docstring_families(n_families=3)
    counts = data.counts()
    assert len(counts) == 3 and len(set(counts.values())) == 1
    assert set(data.names) <= stdlib_packages()
    assert len(set(data.texts)) == len(data.texts)
    train, test = data.split(0.2, seed=0)
    assert not set(train.texts) & set(test.texts) and len(set(test.counts().values())) == 1


def test_classify_train_and_eval_cli(tmp_path, cli):
    rows = ["text\tlabel"]
    rng = random.Random(0)
    for _ in range(60):
        rows.append(f"{rng.choice(['great', 'wonderful', '최고', '재밌다'])} movie {rng.randrange(99)}\tpos")
        rows.append(f"{rng.choice(['awful', 'boring', '최악', '지루하다'])} movie {rng.randrange(99)}\tneg")
    (tmp_path / "data.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for family in ("bert", "gpt"):
        out = tmp_path / family
        result = cli("classify", "train", "--data", tmp_path / "data.tsv", "--out", out, "--model", family,
                     "--steps", "40", "--block-size", "16", "--json")
        assert result.code == 0, result.err
        report = json.loads(result.out)
        assert report["family"] == family and report["labels"] == ["neg", "pos"]
        assert report["accuracy"] >= 0.9  # the first word decides the label
        scored = cli("classify", "eval", out, "--data", tmp_path / "data.tsv", "--json")
        assert scored.code == 0 and sum(map(sum, json.loads(scored.out)["confusion"])) == 120
    missing = cli("classify", "train", "--data", tmp_path / "data.tsv", "--out", tmp_path / "x", "--text-column", "review")
    assert missing.code == 2 and "review" in missing.err


def test_nsmc_reads_korean_reviews(shared_data):
    train, test = nsmc(shared_data / "nsmc", limit=200)
    assert len(train) == 200 and train.names == ["negative", "positive"]
    assert any("\uac00" <= ch <= "\ud7a3" for ch in "".join(train.texts))
    assert set(test.counts()) == {"negative", "positive"}
