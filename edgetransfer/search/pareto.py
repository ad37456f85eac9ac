"""The Pareto front of a search (no candidate better in accuracy and as good in latency and
size) and its plot: accuracy kept against latency, and against size."""

from __future__ import annotations

from pathlib import Path


def front(candidates: list[dict]) -> list[str]:
    """Names of the evaluated candidates that no other one dominates: at least as accurate,
    fast and small, and strictly better in one."""
    done = [c for c in candidates if c.get("kept") is not None]

    def dominates(a, b):
        ge = (a["kept"] >= b["kept"] and a["p50_ms"] <= b["p50_ms"]
              and a["bundle_bytes"] <= b["bundle_bytes"])
        gt = (a["kept"] > b["kept"] or a["p50_ms"] < b["p50_ms"]
              or a["bundle_bytes"] < b["bundle_bytes"])
        return ge and gt

    return [c["name"] for c in done if not any(dominates(o, c) for o in done if o is not c)]


def plot(candidates: list[dict], budget, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [c for c in candidates if c.get("kept") is not None]
    on_front = set(front(candidates))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, key, scale, label, limit in (
            (axes[0], "p50_ms", 1.0, "batch-1 p50 latency (ms)", budget.latency_ms),
            (axes[1], "bundle_bytes", 1e-6, "bundle size, model + tokenizer gzipped (MB)",
             budget.size_mb)):
        for c in done:
            mark = "o" if c["name"] in on_front else "x"
            ax.scatter(c[key] * scale, 100 * c["kept"], marker=mark,
                       color=f"C{c['depth'] - 1}", s=40 if mark == "o" else 25)
        for c in done:
            if c["name"] in on_front:
                ax.annotate(c["name"], (c[key] * scale, 100 * c["kept"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        if limit is not None:
            ax.axvline(limit, color="grey", linestyle="--", linewidth=1)
        if budget.kept is not None:
            ax.axhline(100 * budget.kept, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[1].set_xscale("log")  # an fp32 embedding table (static int8) is 5x the others'
    axes[1].set_xlabel(axes[1].get_xlabel() + ", log scale")
    axes[0].set_ylabel("accuracy kept of the teacher's (%)")
    depths = sorted({c["depth"] for c in done})
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=f"C{d - 1}",
                          label=f"{d}-layer student") for d in depths]
    handles.append(plt.Line2D([], [], marker="x", linestyle="", color="black",
                              label="dominated"))
    axes[1].legend(handles=handles, fontsize=8, loc="lower right")
    fig.suptitle(title + "  (o: Pareto front; dashed/dotted: the budget)")
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
