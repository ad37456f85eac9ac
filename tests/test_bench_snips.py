"""bench/snips.py's bookkeeping: how it scores the bundles' answers and which way its
differences point (the measurements themselves are the benchmark's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import snips  # noqa: E402

GOLD = [
    {"tokens": ["play", "abba"], "slots": ["O", "B-artist"], "intent": "PlayMusic"},
    {"tokens": ["weather", "in", "new", "york"], "slots": ["O", "O", "B-city", "I-city"],
     "intent": "GetWeather"},
]


def _span(text: str, word: str, kind: str) -> dict:
    start = text.index(word)
    return {"type": kind, "text": word, "start": start, "end": start + len(word)}


def test_answers_are_scored_per_head_and_by_sentence():
    right = [{"intent": "PlayMusic", "slots": [_span("play abba", "abba", "artist")]},
             {"intent": "GetWeather",
              "slots": [_span("weather in new york", "new york", "city")]}]
    got = snips.score(GOLD, right)
    assert (got["intent_accuracy"], got["slots_entity_f1"], got["exact_match"]) == (1, 1, 1)
    # the second sentence's city cut short ("new" alone): one wrong entity, one missed
    wrong = [right[0], {"intent": "GetWeather",
                        "slots": [_span("weather in new york", "new", "city")]}]
    got = snips.score(GOLD, wrong)
    assert got["intent_accuracy"] == 1 and got["exact_match"] == 0.5
    assert got["slots_entity_f1"] == pytest.approx(0.5)


def test_joint_minus_separate_points_the_right_way():
    right = [{"intent": "PlayMusic", "slots": [_span("play abba", "abba", "artist")]},
             {"intent": "GetWeather",
              "slots": [_span("weather in new york", "new york", "city")]}]
    worse = [right[0] | {"intent": "GetWeather"}, right[1]]
    d = snips.paired(snips.score(GOLD, right), snips.score(GOLD, worse))
    assert d["intent_accuracy"]["points"] == pytest.approx(50.0)  # joint better
    assert d["slots_entity_f1"]["points"] == pytest.approx(0.0)
