"""Tiny SNIPS-shaped data for the joint-task tests: an intent per utterance and a slot tag
per word, learnable by a 2-layer random BERT in a few epochs."""

from __future__ import annotations

import random

INTENTS = {
    "PlayMusic": (["play", "some"], "artist", ["adele", "queen", "abba", "muse"]),
    "GetWeather": (["weather", "in"], "city", ["paris", "berlin", "rome", "oslo"]),
    "BookRestaurant": (["book", "a", "table", "at"], "restaurant", ["nopa", "zuni", "chez"]),
}


def rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        intent = rng.choice(sorted(INTENTS))
        lead, slot, values = INTENTS[intent]
        value = rng.choice(values).split()
        tokens = lead + value + (["now"] if rng.random() < 0.5 else [])
        slots = (["O"] * len(lead) + [f"B-{slot}"] + [f"I-{slot}"] * (len(value) - 1)
                 + ["O"] * (len(tokens) - len(lead) - len(value)))
        out.append({"tokens": tokens, "slots": slots, "intent": intent})
    return out
