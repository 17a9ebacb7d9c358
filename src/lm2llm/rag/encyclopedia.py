"""A seeded fictional encyclopedia: questions no model can answer closed-book, each with a known gold passage.

200 invented towns × 5 attributes (province, founding year, founder, main export, population), written as
short articles in English and, with separately invented Hangul names, in Korean. Names are built from
syllables, checked unique, and checked not to be a word of the article template, so a correct answer can
only come from the passage. Attribute values repeat across towns (several towns export amber, many lie in
the same province), so a retriever has to find the town, not the value.

`articles(lang)` gives (origin, text) documents for `RagIndex.build`; `questions(lang)` gives one question
per town and attribute with its answer and the origin of the gold article (`encyclopedia-en:t042`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

N_ENTITIES = 200
ATTRIBUTES = ("province", "founded", "founder", "export", "population")
SOURCES = {"encyclopedia-en": "en", "encyclopedia-ko": "ko"}
SEED = 2024

_EN_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "tr",
              "sk", "th", "vel", "mor", "kal"]
_EN_VOWELS = ["a", "e", "i", "o", "u", "ae", "ia", "ou"]
_EN_CODAS = ["", "", "n", "r", "s", "l", "th", "m", "x"]
_KO_SYLLABLES = list("가나다라마바사아자차카타파하고노도로모보소오조코토포호구누두루무부수우주쿠투푸후"
                     "벨린몬테알렌카르시온한솔미르바엘")
_EXPORTS = {"amber": "호박", "salt": "소금", "copper": "구리", "silk": "비단", "glass": "유리", "tea": "차",
            "wool": "양모", "paper": "종이", "tin": "주석", "indigo": "쪽빛 염료", "honey": "꿀", "cedar": "삼나무"}
N_PROVINCES = 12
N_FOUNDERS = 200


@dataclass(frozen=True)
class Town:
    id: str
    name: str
    province: str
    founded: int
    founder: str
    export: str
    population: int


@dataclass(frozen=True)
class Question:
    id: str
    lang: str
    attribute: str
    question: str
    answer: str
    gold_origin: str


def _english_name(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(_EN_ONSETS) + rng.choice(_EN_VOWELS) for _ in range(syllables)]
    return ("".join(parts) + rng.choice(_EN_CODAS)).capitalize()


def _korean_name(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_KO_SYLLABLES) for _ in range(syllables))


def _unique(make, count: int, taken: set[str]) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = make()
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


@lru_cache(maxsize=2)
def towns(lang: str = "en") -> tuple[Town, ...]:
    """The 200 towns of one language edition (same seed → same towns)."""
    rng = random.Random(f"{SEED}-{lang}")
    taken: set[str] = set(_TEMPLATE_WORDS[lang])
    if lang == "en":
        names = _unique(lambda: _english_name(rng, rng.choice([2, 3])), N_ENTITIES, taken)
        provinces = _unique(lambda: _english_name(rng, 3), N_PROVINCES, taken)
        founders = [f"{a} {b}" for a, b in zip(_unique(lambda: _english_name(rng, 2), N_FOUNDERS, taken),
                                               _unique(lambda: _english_name(rng, 2), N_FOUNDERS, taken), strict=True)]
        exports = list(_EXPORTS)
    elif lang == "ko":
        names = _unique(lambda: _korean_name(rng, rng.choice([3, 4])), N_ENTITIES, taken)
        provinces = _unique(lambda: _korean_name(rng, 3), N_PROVINCES, taken)
        founders = _unique(lambda: _korean_name(rng, 3), N_FOUNDERS, taken)
        exports = list(_EXPORTS.values())
    else:
        raise ValueError(f"no {lang!r} edition: use 'en' or 'ko'")
    return tuple(Town(f"t{i:03d}", name, rng.choice(provinces), rng.randint(1100, 1950), founders[i],
                      rng.choice(exports), rng.randint(20, 9000) * 100)
                 for i, name in enumerate(names))


def _particle(word: str, after_consonant: str, after_vowel: str) -> str:
    """The word with the Korean particle its last syllable takes (은/는, 이/가, 을/를)."""
    last = ord(word[-1]) - 0xAC00
    return word + (after_consonant if 0 <= last < 11172 and last % 28 else after_vowel)


def article(town: Town, lang: str) -> str:
    if lang == "ko":
        topic = _particle(town.name, "은", "는")
        return (f"{topic} {town.province} 지방에 있는 도시이다. {topic} {town.founded}년에 "
                f"{_particle(town.founder, '이', '가')} 세웠다. {town.name}의 주요 수출품은 {town.export}이다. "
                f"{town.name}의 인구는 {town.population}명이다.")
    return (f"{town.name} is a town in the province of {town.province}. {town.name} was founded in "
            f"{town.founded} by {town.founder}. The main export of {town.name} is {town.export}. "
            f"{town.name} has a population of {town.population}.")


_QUESTIONS = {
    "en": {"province": "In which province is the town of {name}?",
           "founded": "In which year was the town of {name} founded?",
           "founder": "Who founded the town of {name}?",
           "export": "What is the main export of the town of {name}?",
           "population": "What is the population of the town of {name}?"},
    "ko": {"province": "{topic} 어느 지방에 있는가?",
           "founded": "{topic} 몇 년에 세워졌는가?",
           "founder": "{object} 세운 사람은 누구인가?",
           "export": "{name}의 주요 수출품은 무엇인가?",
           "population": "{name}의 인구는 몇 명인가?"},
}
_TEMPLATE_WORDS = {lang: {w.strip("?.,{}").capitalize() for text in templates.values() for w in text.split()}
                   for lang, templates in _QUESTIONS.items()}


def chance_level(lang: str = "en") -> float:
    """Accuracy of guessing: per attribute, one over the number of values it takes, averaged over the five."""
    return sum(1 / len({getattr(t, a) for t in towns(lang)}) for a in ATTRIBUTES) / len(ATTRIBUTES)


def origin(town: Town, lang: str) -> str:
    return f"encyclopedia-{lang}:{town.id}"


def articles(lang: str = "en") -> list[tuple[str, str]]:
    """(origin, article text) for every town, the documents an index is built from."""
    return [(origin(t, lang), article(t, lang)) for t in towns(lang)]


def questions(lang: str = "en") -> list[Question]:
    """One question per town and attribute (1,000 per language), in town order."""
    return [Question(f"{lang}-{t.id}-{a}", lang, a,
                     _QUESTIONS[lang][a].format(name=t.name, topic=_particle(t.name, "은", "는"),
                                                object=_particle(t.name, "을", "를")),
                     str(getattr(t, a)), origin(t, lang))
            for t in towns(lang) for a in ATTRIBUTES]
