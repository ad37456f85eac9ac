"""Code blocks and command lines read out of Markdown, so that a test runs or parses what a
page shows, never a copy of it."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
HEADING = re.compile(r"^(#{1,6}) (.+)$", re.M)
SEPARATORS = {"&&", "||", ";", "|"}


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    heading: str  # the nearest heading above it ("" before the first)
    line: int  # where the code starts (1-based), for messages


def blocks(text: str, lang: str | None = None) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order (`lang` only, if given)."""
    headings = [(m.start(), m.group(2).strip()) for m in HEADING.finditer(text)]
    found = []
    for m in FENCE.finditer(text):
        # (a '#' line inside an earlier fence is not a heading: take those before the fence)
        above = [h for at, h in headings if at < m.start() and not _inside(text, at)]
        if lang is None or m.group(1) == lang:
            found.append(Block(m.group(1), m.group(2), above[-1] if above else "",
                               text.count("\n", 0, m.start(2)) + 1))
    return found


def _inside(text: str, at: int) -> bool:
    """Whether position `at` lies inside a fenced block."""
    return text.count("```", 0, at) % 2 == 1


def section(text: str, heading: str) -> str:
    """The text under `heading` (its exact title), up to the next heading of its level or
    higher."""
    for m in HEADING.finditer(text):
        if m.group(2).strip() == heading and not _inside(text, m.start()):
            level = len(m.group(1))
            rest = text[m.end():]
            for n in HEADING.finditer(rest):
                if len(n.group(1)) <= level and not _inside(rest, n.start()):
                    return rest[:n.start()]
            return rest
    raise KeyError(f"no heading {heading!r}")


def lines(code: str) -> list[str]:
    """The code's lines with backslash continuations joined, blank and comment lines left
    out."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line for line in joined.splitlines() if line.strip()
            and not line.lstrip().startswith("#")]


def commands(code: str) -> list[list[str]]:
    """Each command of a shell block as its words (comments dropped; `a && b` is two)."""
    out = []
    for line in lines(code):
        words, current = shlex.split(line, comments=True), []
        for word in words:
            if word in SEPARATORS:
                if current:
                    out.append(current)
                current = []
            else:
                current.append(word)
        if current:
            out.append(current)
    return out
