"""Which candidate a search keeps, and what to say when none fits the budget."""

from __future__ import annotations


def best(candidates: list[dict], prefer: str) -> dict | None:
    ok = [c for c in candidates if c.get("within_budget")]
    if not ok:
        return None
    key = {"latency": lambda c: (c["p50_ms"], c["bundle_bytes"]),
           "size": lambda c: (c["bundle_bytes"], c["p50_ms"]),
           "accuracy": lambda c: (-(c["kept"] or 0), c["p50_ms"])}[prefer]
    return min(ok, key=key)


def closest(candidates: list[dict], budget) -> str:
    """Per constraint, how close the nearest candidate came (the one-line verdict)."""
    done = [c for c in candidates if c.get("status") == "evaluated"]
    if not done:
        return "no candidate was evaluated (every depth was stopped or failed)"
    parts = []
    for name, missed in (("latency", lambda c: c["p50_ms"]),
                         ("size", lambda c: c["bundle_bytes"]),
                         ("kept", lambda c: -(c["kept"] or 0))):
        if all(name in c["misses"] for c in done):
            nearest = min(done, key=missed)
            parts.append(f"no candidate met {name} (nearest: {nearest['name']}, "
                         f"{nearest['misses'][name]})")
    if not parts:  # each constraint met by some, never all by one
        nearest = min(done, key=lambda c: len(c["misses"]))
        parts.append(f"each constraint is met by some candidate but never all by one "
                     f"(nearest: {nearest['name']}, {'; '.join(nearest['misses'].values())})")
    return "; ".join(parts)
