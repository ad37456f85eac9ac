"""SNIPS: one encoder with two heads (intent, slots) against two single-task models.

    python bench/snips.py --data ../shared/data/snips --out bench/results/snips \
        [--pipeline models/snips]

1. **The recipe** (recipes/snips.yaml: minilm-l6 joint teacher, full fine-tune on all
   13,084 train utterances; a 3-layer student; int8; verify on test.jsonl; the bundle),
   with the accuracy gates lifted so a weak run is still measured (--keep-gates: as
   written, so a run of it in --pipeline is reused whole). From its records: each
   head's test figures (intent accuracy, slot entity F1 with seqeval, sentence exact match)
   of the teacher, the student and the int8 student; the int8 student's share kept per
   head; its speed-up over the teacher at batch 1; the recipe's wall time. `--pipeline`
   names a folder the recipe already ran into (models/snips after `edgetransfer run
   recipes/snips.yaml`): its steps are reused where inputs and settings are unchanged.
2. **Joint against separate**, on all of train and on a seeded 10% of it (the same rows for
   every arm, holding every intent and slot tag of train: `covering_sample`): a joint model
   and two single-task models (intent: text-classification on the words joined by spaces;
   slots: token-classification on the words), each one
   `edgetransfer finetune` with the recipe's teacher settings (the full-data joint arm is
   the recipe's teacher itself), then int8 (`export --quantize int8-dynamic`) and a bundle
   (`package`). Every figure is the bundles' answer: each test utterance's words joined as
   text, through predict.py's Predictor (torch-free), scored by the registered tasks'
   metrics, with paired bootstrap 95% intervals for joint minus separate (the tasks'
   `compare`). Beside them: the bundles' archive sizes, and the per-utterance latency of one
   joint call against the intent call plus the slots call (batch 1, one thread, the 700 test
   utterances, the three bundles interleaved utterance by utterance).

Writes OUT/snips.json and OUT/snips.png, and puts the tables as a section of
bench/RESULTS.md (--render-only: again from OUT/snips.json). Resumable: an arm whose
folder is complete is reused (--force re-runs everything).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import _json, environment, verify_report, write_section  # noqa: E402
from run_all import run_recipe as recipe_run  # noqa: E402

RECIPE = ROOT / "recipes/snips.yaml"
HEADS = ("intent", "slots")
FRACTION = 0.1
SEED = 42
# The goals, each stated once (the tables and the JSON read them).
GOALS = {"teacher_intent_accuracy": 0.985, "teacher_slots_entity_f1": 0.960,
         "teacher_exact_match": 0.900, "kept_intent": 0.98, "kept_slots": 0.97,
         "p50_ratio": 0.6, "size_ratio": 0.6, "head_points": 0.5, "wall_min": 45.0}


def _recipe():
    from edgetransfer.recipe import read_yaml

    return read_yaml(RECIPE)


def teacher_flags() -> list[str]:
    """The recipe's teacher settings as finetune flags: every arm trains the same way."""
    r = _recipe()
    ft, data = r["finetune"], r["data"]
    return ["--model", r["model"], "--method", ft["method"], "--lr", str(ft["lr"]),
            "--epochs", str(ft["epochs"]), "--max-length", str(data["max_length"])]


def covering_sample(rows: list[dict], k: int) -> list[dict]:
    """A seeded sample of `k` rows that holds every intent and slot tag the rows have (the
    single-task tagger refuses a tag at validation that train never has; a random 10% of
    SNIPS misses rare ones): rows that add an unseen label first, in a seeded order, then
    the rest of that order."""
    order = rows[:]
    random.Random(SEED).shuffle(order)
    seen: set = set()
    first, rest = [], []
    for r in order:
        labels = {r["intent"], *r["slots"]}
        (first if labels - seen else rest).append(r)
        seen |= labels
    return (first + rest)[:k]


def write_data(src: Path, out: Path) -> dict:
    """The arms' files: the splits as given, a seeded 10% of train (the same rows for every
    arm), and the intent task's copies with the words joined as text."""
    out.mkdir(parents=True, exist_ok=True)
    rows = {s: [json.loads(line) for line in (src / f"{s}.jsonl").read_text().splitlines()
                if line.strip()] for s in ("train", "validation", "test")}
    rows["train10"] = covering_sample(rows["train"], round(FRACTION * len(rows["train"])))
    files = {}
    for split, rs in rows.items():
        joint = out / f"{split}.jsonl"
        intent = out / f"intent-{split}.jsonl"
        if not joint.exists():
            joint.write_text("".join(json.dumps(r) + "\n" for r in rs))
            intent.write_text("".join(json.dumps({"text": " ".join(r["tokens"]),
                                                  "label": r["intent"]}) + "\n" for r in rs))
        files[split], files[f"intent-{split}"] = joint, intent
    return files


def _edgetransfer(*args) -> float:
    cmd = [sys.executable, "-m", "edgetransfer", "-q", *map(str, args)]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        raise SystemExit(f"failed ({rc}): {' '.join(cmd)}")
    return round(time.perf_counter() - t0, 1)


def _done(folder: Path) -> bool:
    return (folder / "artifact.json").is_file()


def arm(name: str, kind: str, train: Path, files: dict, out: Path, teacher: Path | None,
        force: bool) -> dict:
    """One arm: its model (finetuned here, or the recipe's teacher), int8, its bundle."""
    model = teacher or out / name / "model"
    intent = kind == "intent"
    split = {"train": files["intent-train" if intent else "train"] if train is None else train,
             "validation": files["intent-validation" if intent else "validation"],
             "test": files["intent-test" if intent else "test"]}
    walls = {}
    if teacher is None and (force or not _done(model)):
        task = {"joint": ["--task", "multi-task", "--head",
                          "intent=text-classification:intent",
                          "--head", "slots=token-classification:slots"],
                "intent": ["--task", "text-classification"],
                "slots": ["--task", "token-classification", "--tag-column", "slots"]}[kind]
        walls["finetune_s"] = _edgetransfer(
            "finetune", *task, *teacher_flags(), "--train", split["train"], "--validation",
            split["validation"], "--test", split["test"], "--out", model, "--overwrite")
    onnx, bundle = out / name / "int8", out / name / "bundle"
    if force or not _done(onnx):
        walls["export_s"] = _edgetransfer(
            "export", "--model", model, "--out", onnx, "--quantize", "int8-dynamic",
            "--eval-data", split["test"], "--max-accuracy-drop", "100", "--overwrite",
            *(["--tag-column", "slots"] if kind == "slots" else []))
    if force or not (out / name / "bundle.tar.gz").is_file():
        walls["package_s"] = _edgetransfer("package", "--model", onnx, "--out", bundle,
                                           "--no-measure", "--unverified", "--overwrite")
    metrics = _json(Path(model) / "metrics.json") or {}
    return {"name": name, "kind": kind, "model": str(model), "bundle": str(bundle),
            "archive_bytes": (out / name / "bundle.tar.gz").stat().st_size,
            "torch_test": {k: v for k, v in metrics.get("test", {}).items()
                           if isinstance(v, (int, float))}, **walls}


def answers(bundle: Path, kind: str, texts: list[str]) -> list[dict]:
    """Per utterance, what the bundle printed: {"intent": label} and/or {"slots": spans}."""
    from edgetransfer.bundle.runtime.predict import Predictor

    out = []
    for row in Predictor(bundle).predict(texts):
        if kind == "joint":
            out.append({"intent": row["intent"]["label"], "slots": row["slots"]})
        elif kind == "intent":
            out.append({"intent": row["label"]})
        else:
            out.append({"slots": row["entities"]})
    return out


def score(gold: list[dict], got: list[dict]) -> dict:
    """Each head's figures of the bundles' answers (`got`: per utterance {"intent": label,
    "slots": spans}), by the registered tasks' metrics, and the sentence exact match."""
    import numpy as np

    from edgetransfer.tasks import get, spans

    intents = sorted({g["intent"] for g in gold})
    tags = sorted({t for g in gold for t in g["slots"]} | {"O"})
    tag_order = [t for t in tags if t == "O"] + [t for t in tags if t != "O"]
    index = {t: i for i, t in enumerate(tag_order)}
    y_int = [intents.index(g["intent"]) for g in gold]
    p_int = [intents.index(a["intent"]) if a["intent"] in intents else -1 for a in got]
    y_slot, p_slot = [], []
    for g, a in zip(gold, got):
        text, starts = spans.join(g["tokens"])
        ends = [s + len(w) for s, w in zip(starts, g["tokens"])]
        words, cut = spans.word_tags(a["slots"], starts, ends)
        for t in words:
            if t not in index:  # (a type train never saw: a wrong entity all the same)
                index[t] = len(tag_order)
                tag_order.append(t)
        ids = np.array([index[t] for t in words]).view(spans.Tags)
        ids.cut = tuple(cut)
        y_slot.append(np.array([index[t] for t in g["slots"]]))
        p_slot.append(ids)
    tc, tok = get("text-classification"), get("token-classification")
    rep_i = tc.metrics(y_int, p_int, intents)
    rep_s = tok.metrics(y_slot, p_slot, tag_order)
    exact = np.mean([i == j and np.array_equal(a, b) and not spans.cut_of(b)
                     for i, j, a, b in zip(y_int, p_int, y_slot, p_slot)])
    return {"intent_accuracy": rep_i["accuracy"], "slots_entity_f1": rep_s["entity_f1"],
            "exact_match": float(exact),
            "_pred": (p_int, p_slot), "_gold": (y_int, y_slot), "_names": (intents, tag_order)}


def paired(a: dict, b: dict) -> dict:
    """Joint (a) minus separate (b), per head, in points with paired bootstrap intervals
    (the tasks' compare gives reference minus candidate: b as the reference)."""
    from edgetransfer.tasks import get

    (y_i, y_s), names_s = a["_gold"], b["_names"][1]
    out = {}
    drop = get("text-classification").compare(y_i, b["_pred"][0], a["_pred"][0], a["_names"][0])
    out["intent_accuracy"] = {"points": -drop["accuracy"]["points"],
                              "ci95": [-drop["accuracy"]["ci95"][1],
                                       -drop["accuracy"]["ci95"][0]]}
    # (both answers' tags as names, then ids in one order: the two models' orders differ)
    order = sorted(set(a["_names"][1]) | set(names_s))
    def ids(pred, names):
        import numpy as np

        from edgetransfer.tasks import spans

        out = []
        for p in pred:
            x = np.array([order.index(names[int(i)]) for i in p]).view(spans.Tags)
            x.cut = spans.cut_of(p)
            out.append(x)
        return out
    gold = ids(y_s, a["_names"][1])
    d = get("token-classification").compare(gold, ids(b["_pred"][1], names_s),
                                            ids(a["_pred"][1], a["_names"][1]), order)
    out["slots_entity_f1"] = {"points": -d["entity_f1"]["points"],
                              "ci95": [-d["entity_f1"]["ci95"][1], -d["entity_f1"]["ci95"][0]]}
    return out


def latency(bundles: dict[str, Path], texts: list[str], rounds: int = 2) -> dict:
    """Per-utterance ms, batch 1, one thread: the joint bundle's one call against the intent
    call plus the slots call, the bundles interleaved utterance by utterance."""
    import numpy as np

    from edgetransfer.bundle.runtime.predict import Predictor

    ps = {k: Predictor(v, threads=1) for k, v in bundles.items()}
    for p in ps.values():
        for t in texts[:20]:
            p.predict([t])
    times = {k: [] for k in ps}
    for r in range(rounds):
        for i, t in enumerate(texts):
            order = list(ps)
            order = order[(i + r) % len(order):] + order[:(i + r) % len(order)]
            for k in order:
                t0 = time.perf_counter()
                ps[k].predict([t])
                times[k].append(1000 * (time.perf_counter() - t0))
    joint = np.array(times["joint"])
    two = np.array(times["intent"]) + np.array(times["slots"])
    return {"joint_p50_ms": float(np.median(joint)), "two_p50_ms": float(np.median(two)),
            "intent_p50_ms": float(np.median(times["intent"])),
            "slots_p50_ms": float(np.median(times["slots"])),
            "ratio_p50": float(np.median(joint) / np.median(two)),
            "utterances": len(texts), "rounds": rounds}


def comparison(args, files: dict, out: Path, teacher: Path) -> dict:
    gold = [json.loads(line) for line in files["test"].read_text().splitlines() if line.strip()]
    texts = [" ".join(g["tokens"]) for g in gold]
    result = {}
    timed = False
    for label, train in (("all", None), ("10%", "train10")):
        if label not in args.fractions:
            continue
        arms = {}
        for kind in ("joint", "intent", "slots"):
            name = f"{kind}-{'all' if train is None else '10pct'}"
            use = None if train is None else files[("intent-" if kind == "intent" else "")
                                                    + train]
            arms[kind] = arm(name, kind, use, files, out, teacher if (
                kind == "joint" and train is None) else None, args.force)
        got = {k: answers(Path(a["bundle"]), k, texts) for k, a in arms.items()}
        joint = score(gold, got["joint"])
        separate = score(gold, [i | s for i, s in zip(got["intent"], got["slots"])])
        rows = len((files["train"] if train is None else files[train]).read_text().splitlines())
        result[label] = {
            "train_rows": rows, "arms": arms,
            "joint": {k: v for k, v in joint.items() if not k.startswith("_")},
            "separate": {k: v for k, v in separate.items() if not k.startswith("_")},
            "joint_minus_separate": paired(joint, separate),
            "archive_ratio": arms["joint"]["archive_bytes"] / (
                arms["intent"]["archive_bytes"] + arms["slots"]["archive_bytes"]),
        }
        if not timed:  # (the bundles' size and speed are the architecture's, not the data's:
            timed = True  # the first fraction's bundles are timed)
            result[label]["latency"] = latency({k: Path(a["bundle"]) for k, a in arms.items()},
                                               texts)
    return result


def recipe_section(args, root: Path) -> dict:
    lifted = [] if args.keep_gates else ["verify.max_accuracy_drop=100",
                                         "export.0.max_accuracy_drop=100"]
    run = recipe_run(RECIPE, root, [f"data.dir={args.data.resolve()}", *lifted], args.force)
    report = verify_report(root / "verify" / "verify.json")
    models = {}
    for m in report.models if report else []:
        lat = (m.latency or {}).get("batch1")
        models[m.name] = {k: m.metrics.get(k) for k in
                          ("intent_accuracy", "slots_entity_f1", "exact_match", "combined")}
        models[m.name]["p50_ms"] = lat.p50_ms if lat else None
        models[m.name]["size_bytes"] = m.size_bytes
    pipeline = _json(root / "pipeline.json") or {}
    return {"run": run, "models": models, "pipeline_wall_s": sum(
        v.get("wall_time_s") or 0 for v in pipeline.get("steps", {}).values())}


def _f(x, digits=4):
    return "-" if x is None else f"{x:.{digits}f}"


def render(r: dict) -> str:
    g, rec = GOALS, r["recipe"]
    m = rec["models"]
    teacher, student = m.get("teacher", {}), m.get("onnx-int8") or m.get("int8", {})
    lines = [f"## SNIPS: one encoder, two heads (`bench/snips.py`, {r['date']})", "",
             f"`python bench/snips.py --data ../shared/data/snips --out {r['out']}"
             f"{' --pipeline ' + r['pipeline'] if r.get('pipeline') else ''}` took "
             f"{r['wall_s'] / 60:.1f} min. {r['env_line']}"
             + (f" {r['note']}" if r.get("note") else ""), "",
             "### The recipe (recipes/snips.yaml), test.jsonl (700 utterances)", "",
             "| model | intent accuracy | slot F1 (entity) | exact match | p50 ms (batch 1) "
             "| MB |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in m.items():
        lines.append(f"| {name} | {_f(row['intent_accuracy'])} | {_f(row['slots_entity_f1'])} "
                     f"| {_f(row['exact_match'])} | {_f(row['p50_ms'], 3)} | "
                     f"{(row['size_bytes'] or 0) / 2**20:.1f} |")
    kept = {h: (student.get(k) / teacher[k] if teacher.get(k) and student.get(k) else None)
            for h, k in (("intent", "intent_accuracy"), ("slots", "slots_entity_f1"))}
    wall = rec["pipeline_wall_s"] / 60
    lines += ["", "| goal | target | measured | met |", "| --- | --- | --- | --- |"]
    for what, target, value in (
            ("teacher intent accuracy", g["teacher_intent_accuracy"],
             teacher.get("intent_accuracy")),
            ("teacher slot F1", g["teacher_slots_entity_f1"], teacher.get("slots_entity_f1")),
            ("teacher exact match", g["teacher_exact_match"], teacher.get("exact_match")),
            ("int8 student kept, intent", g["kept_intent"], kept["intent"]),
            ("int8 student kept, slots", g["kept_slots"], kept["slots"])):
        lines.append(f"| {what} | >= {target} | {_f(value)} | "
                     f"{'**yes**' if value is not None and value >= target else 'no'} |")
    lines.append(f"| the recipe end to end (sum of its steps) | <= {g['wall_min']:g} min | "
                 f"{wall:.1f} min | {'**yes**' if wall <= g['wall_min'] else 'no'} |")
    lines += ["", "### Joint against separate (the bundles' answers on test.jsonl; int8)", "",
              "| train | rows | model | intent accuracy | slot F1 | exact match | archive MB |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for label, c in r["comparison"].items():
        arms = c["arms"]
        for side, mb in (("joint", arms["joint"]["archive_bytes"]),
                         ("separate", arms["intent"]["archive_bytes"]
                          + arms["slots"]["archive_bytes"])):
            s = c[side]
            lines.append(f"| {label} | {c['train_rows']} | {side} | "
                         f"{_f(s['intent_accuracy'])} | {_f(s['slots_entity_f1'])} | "
                         f"{_f(s['exact_match'])} | {mb / 2**20:.2f} |")
        d = c["joint_minus_separate"]
        lines.append(f"| {label} | | joint - separate, points [95% CI] | "
                     + " | ".join(f"{d[k]['points']:+.2f} [{d[k]['ci95'][0]:+.2f}, "
                                  f"{d[k]['ci95'][1]:+.2f}]"
                                  for k in ("intent_accuracy", "slots_entity_f1"))
                     + f" | | {c['archive_ratio']:.2f}x |")
    first = next(iter(r["comparison"]))
    c = r["comparison"][first]
    lat = c["latency"]
    ratio_ok = lat["ratio_p50"] <= g["p50_ratio"]
    size_ok = c["archive_ratio"] <= g["size_ratio"]
    d = c["joint_minus_separate"]
    within = all(abs(d[k]["points"]) <= g["head_points"] for k in d)
    lines += ["", f"The bundles trained on {first} of train, per utterance, batch 1, one "
              f"thread, {lat['utterances']} test utterances "
              f"x {lat['rounds']} rounds, interleaved: joint p50 {lat['joint_p50_ms']:.3f} ms; "
              f"intent {lat['intent_p50_ms']:.3f} + slots {lat['slots_p50_ms']:.3f} "
              f"(p50 of the sum {lat['two_p50_ms']:.3f} ms).", "",
              f"| goal ({first} of train) | target | measured | met |",
              "| --- | --- | --- | --- |",
              f"| p50 of one joint call / the two calls | <= {g['p50_ratio']} | "
              f"{lat['ratio_p50']:.2f} | {'**yes**' if ratio_ok else 'no'} |",
              f"| joint archive / the two archives | <= {g['size_ratio']} | "
              f"{c['archive_ratio']:.2f} | {'**yes**' if size_ok else 'no'} |",
              f"| each head within {g['head_points']} point of its single-task model | "
              f"<= {g['head_points']} | "
              + ", ".join(f"{k} {d[k]['points']:+.2f}" for k in d)
              + f" | {'**yes**' if within else 'no'} |", ""]
    missing = [f for f in ("all", "10%") if f not in r["comparison"]]
    if missing:
        lines += [f"Not measured in this run: the comparison on {', '.join(missing)} of train "
                  f"(`--fractions {','.join(missing)}`; each single-task model on all of "
                  f"train takes about as long as the recipe's teacher).", ""]
    if r.get("plot"):
        lines += [f"![SNIPS joint vs separate]({r['plot']})", ""]
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in zip(axes, ("intent_accuracy", "slots_entity_f1"),
                              ("intent accuracy", "slot F1 (entity)")):
        labels = list(r["comparison"])
        for j, side in enumerate(("joint", "separate")):
            ax.bar([i + 0.38 * j for i in range(len(labels))],
                   [r["comparison"][lab][side][key] for lab in labels], width=0.36,
                   label=side)
        ax.set_xticks([i + 0.19 for i in range(len(labels))],
                      [f"{lab} of train" for lab in labels])
        lo = min(r["comparison"][lab][s][key] for lab in labels for s in ("joint", "separate"))
        ax.set_ylim(max(0.0, lo - 0.05), 1.0)
        ax.set_title(title)
        ax.legend(loc="lower right")
    fig.suptitle("SNIPS test, int8 bundles: one joint model vs two single-task models")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/snips")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/snips")
    ap.add_argument("--pipeline", type=Path, help="the recipe's folder to reuse [default: "
                    "OUT/pipeline]")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--keep-gates", action="store_true",
                    help="run the recipe as written (its gates kept: a --pipeline run of it "
                    "is reused whole), not with them lifted")
    ap.add_argument("--fractions", type=lambda v: v.split(","), default=["all", "10%"],
                    help="the comparison's train sizes: all, 10%% or both (all,10%%)")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--note", help="a sentence on how the run went (the machine's load, "
                    "say), kept in snips.json and printed under the heading")
    ap.add_argument("--results-md", type=Path, default=ROOT / "bench/RESULTS.md")
    args = ap.parse_args()
    out = args.out.resolve()
    if not args.render_only:
        t0 = time.perf_counter()
        root = (args.pipeline or out / "pipeline").resolve()
        r = {"date": date.today().isoformat(), "out": str(args.out),
             "pipeline": str(args.pipeline) if args.pipeline else None}
        r["recipe"] = recipe_section(args, root)
        files = write_data(args.data, out / "data")
        r["comparison"] = comparison(args, files, out, root / "teacher")
        env = r["env"] = environment()
        v = env["versions"]
        machine = env["machine"]
        r["env_line"] = (f"Machine: {machine.get('cpu')}, {machine.get('logical_cpus')} "
                         f"cores; torch {v['torch']}, transformers {v['transformers']}, "
                         f"onnxruntime {v['onnxruntime']}.")
        r["wall_s"] = round(time.perf_counter() - t0, 1)
        out.mkdir(parents=True, exist_ok=True)
        r["plot"] = plot(r, ROOT / "bench/snips.png")
        (out / "snips.json").write_text(json.dumps(r, indent=2, default=str))
    r = json.loads((out / "snips.json").read_text())
    if args.note:
        r["note"] = args.note
        (out / "snips.json").write_text(json.dumps(r, indent=2, default=str))
    write_section(args.results_md, render(r), "snips")
    print(render(r))


if __name__ == "__main__":
    main()
