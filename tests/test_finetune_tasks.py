import pytest

from lm2llm.errors import UserError
from lm2llm.finetune.tasks import (
    TASKS,
    exact_match,
    guess_chance,
    korean_to_number,
    make_suite,
    number_to_korean,
    pretraining_documents,
    qa_prompt,
    score_exact_match,
)


@pytest.mark.parametrize(("n", "words"), [
    (0, "영"), (1, "일"), (10, "십"), (11, "십일"), (20, "이십"), (100, "백"), (321, "삼백이십일"),
    (1000, "천"), (1005, "천오"), (9999, "구천구백구십구"), (10000, "만"), (10010, "만십"),
    (25000, "이만오천"), (120000, "십이만"), (99999999, "구천구백구십구만구천구백구십구"),
])
def test_korean_number_words(n, words):
    assert number_to_korean(n) == words
    assert korean_to_number(words) == n


def test_korean_numbers_round_trip_everywhere_below_a_hundred_thousand():
    assert all(korean_to_number(number_to_korean(n)) == n for n in range(100_000))


@pytest.mark.parametrize("bad", ["", "이이", "십백", "만만", "삼x", "백천"])
def test_korean_parser_is_strict(bad):
    with pytest.raises(ValueError):
        korean_to_number(bad)


def test_suite_is_deterministic_and_held_out_prompts_are_disjoint():
    train, test = make_suite(40, 10, seed=3)
    again_train, again_test = make_suite(40, 10, seed=3)
    assert (train, test) == (again_train, again_test)
    assert len(train) == 40 * len(TASKS) and len(test) == 10 * len(TASKS)
    assert not {r.prompt for r in train} & {r.prompt for r in test}
    assert {r.task for r in test} == set(TASKS)
    assert make_suite(5, 10, seed=3)[1] == test  # the test set does not depend on n_train
    assert make_suite(40, 10, seed=4)[1] != test


def test_records_answer_their_prompt():
    train, test = make_suite(30, 0, seed=0)
    for record in train:
        assert record.messages[-1] == {"role": "assistant", "content": record.answer}
        assert record.prompt_messages == [{"role": "user", "content": record.prompt}]
        assert not exact_match(record.wrong, record.answer)
        prompt = record.prompt
        if record.task == "addition":
            a, b = prompt.removeprefix("What is ").removesuffix("?").split(" + ")
            assert int(record.answer) == int(a) + int(b)
        elif record.task == "sort_words":
            assert record.answer.split() == sorted(prompt.split(": ")[1].split())
        elif record.task == "reverse_words":
            assert record.answer.split() == prompt.split(": ")[1].split()[::-1]
        elif record.task == "korean_to_digits":
            assert int(record.answer) == korean_to_number(prompt.split(": ")[1])
        elif record.task == "digits_to_korean":
            assert korean_to_number(record.answer) == int(prompt.split(": ")[1])
        elif record.task == "facts":
            name = prompt.split("Where does ")[1].removesuffix(" live?")
            assert f"{name} lives in {record.answer}." in prompt
        elif record.task == "unit_conversion":
            assert int(record.answer) % int(prompt.split()[1]) == 0


def test_task_selection_and_errors():
    train, test = make_suite(3, 2, seed=0, tasks=["korean_to_digits"])
    assert {r.task for r in train + test} == {"korean_to_digits"}
    with pytest.raises(UserError, match="unknown task"):
        make_suite(1, 1, tasks=["poetry"])


def test_exact_match_scorer_normalises_only_whitespace():
    assert exact_match("  삼백 \n이십일 ", "삼백 이십일")
    assert not exact_match("Seoul.", "Seoul") and not exact_match("seoul", "Seoul")
    _, test = make_suite(0, 2, seed=0, tasks=["addition", "facts"])
    predictions = [test[0].answer, "wrong", test[2].answer + "\n", test[3].answer]
    assert score_exact_match(test, predictions) == {"accuracy": 0.75, "n": 4,
                                                    "per_task": {"addition": 0.5, "facts": 1.0}}


def test_pretraining_documents_never_hold_a_reserved_prompt():
    docs = pretraining_documents(30, reserve=10, seed=0, tasks=["facts", "korean_to_digits"], per_document=4)
    assert len(docs) == 15 and docs == pretraining_documents(30, 10, 0, ["facts", "korean_to_digits"], 4)
    text = "\n\n".join(docs)
    assert "Q: 숫자로 쓰세요: " in text and "\nA: " in text
    for n_test in (1, 10):  # any held-out set up to the reserve stays unseen
        _, test = make_suite(5, n_test, seed=0, tasks=["facts", "korean_to_digits"])
        assert not any(f"Q: {r.prompt}\n" in text for r in test)


def test_a_base_is_asked_in_the_form_of_its_pre_training_pages():
    train, _ = make_suite(8, 0, seed=0, tasks=["facts"])
    page = pretraining_documents(8, 0, seed=0, tasks=["facts"], per_document=1)[0]
    assert page.startswith(qa_prompt(train[0].prompt)) and page == qa_prompt(train[0].prompt) + " " + train[0].answer


def test_chance_is_a_guess_among_the_answers_a_prompt_offers():
    assert guess_chance(["facts"]) == pytest.approx(1 / 3)  # one of the three cities named
    assert guess_chance(["addition", "unit_conversion"]) == 0.0  # open answers
    orders = (1 / 6 + 1 / 24 + 1 / 120) / 3  # one order of 3, 4 or 5 words
    assert guess_chance(["sort_words", "facts"]) == pytest.approx((orders + 1 / 3) / 2)
