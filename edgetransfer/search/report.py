"""What a search writes: search.json, search.md (the table) and search.png (the front);
rewritten after every candidate, so an interrupted search leaves its figures so far."""

from __future__ import annotations

from pathlib import Path

from ..artifacts import write_json
from . import pareto


def write(state: dict, out: Path, budget) -> None:
    """search.json, search.md and search.png, rewritten after every candidate."""
    state["front"] = pareto.front(state["candidates"])
    write_json(out / "search.json", state)
    tmp = out / ".search.md.tmp"
    tmp.write_text(render(state), encoding="utf-8")
    tmp.replace(out / "search.md")
    if any(c.get("kept") is not None for c in state["candidates"]):
        pareto.plot(state["candidates"], budget, out / "search.png",
                    f"search: {Path(state['recipe']).name}, teacher {state['teacher']['metric']} "
                    f"{state['teacher']['value']:.4f}")


def render(state: dict) -> str:
    t = state["teacher"]
    b = state["budget"]
    lines = [f"# search: {state['recipe']}", "",
             f"Budget: latency {b['latency_ms']} ms, size {b['size_mb']} MB, kept {b['kept']} "
             f"(prefer {state['prefer']}). Teacher: {t['folder']}, {t['metric']} "
             f"{t['value']:.4f}, p50 {t['p50_ms']:.3f} ms (PyTorch, batch 1, "
             f"{t['threads']} thread(s)). Candidates timed on {state['timed_on']}, batch 1; "
             f"speed-ups over the teacher on this CPU.", "",
             "| candidate | status | accuracy | kept | p50 ms | speed-up | bundle MB | "
             "model MB | front | misses |", "| --- " * 10 + "|"]
    front = set(state.get("front", []))
    for c in state["candidates"]:
        if c.get("status") != "evaluated":
            lines.append(f"| {c['name']} | {c['status']} | | | | | | | | {c.get('reason', '')} |")
            continue
        lines.append(
            f"| {c['name']} | {'**within**' if c['within_budget'] else 'misses'} | "
            f"{c['value']:.4f} | {_share(c['kept'])} | {c['p50_ms']:.3f} | {c['speedup']:.1f}× | "
            f"{c['bundle_bytes'] / 1e6:.2f} | {c['size_bytes'] / 1e6:.2f} | "
            f"{'o' if c['name'] in front else ''} | {'; '.join(c['misses'].values())} |")
    lines += ["", f"Best within budget: {state.get('best') or 'none'}."]
    if state.get("bundle"):
        mb = state["bundle"]["archive_bytes"]
        lines.append(f"Bundle: {state['bundle']['archive']} ({mb / 1e6:.2f} MB).")
    if state.get("wall_time_s") is not None:
        lines.append(f"Wall time: {state['wall_time_s'] / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def _share(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"
