"""Exports an NPU takes (issue 30): each accelerator profile on the recipes' students.

    python bench/npu_exports.py --case sst2=models/sst2 --case conll2003=models/conll2003 \
        --case fashion-mnist=models/fashion-mnist [--out bench/results/npu]

Each --case names a folder a recipe ran into (`edgetransfer run recipes/NAME.yaml
output=FOLDER`): its student/ checkpoint is exported with `edgetransfer export --for P`
for P in nnapi (u8 QDQ), coreml (fp32, embeddings looked up first on the CPU), qnn (16-bit
activations, 8-bit weights) and qnn8 (8-bit activations), on the recipe's test split,
calibrated on its train split, at the recipe's token limit (the bucket). From each
export.json: the coverage (onnxruntime's usability checker for NNAPI and CoreML MLProgram;
QNN: compiled for HTP on x86 with CPU fallback disabled), the model's agreement with the
PyTorch student and its task metric against the fp32 ONNX graph's, on the CPU provider
and, for QNN, in the HTP simulator. Then every model's batch-1 latency on the CPU provider
beside the recipe's fused CPU export (onnx-int8), interleaved, one thread: the bucket's
cost.

Writes OUT/npu.json, OUT/npu.png and a section of bench/RESULTS.md (--render-only: again
from OUT/npu.json). Resumable: an export whose export.json exists is reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import environment, write_section  # noqa: E402

# profile -> export flags (qnn8: the QNN profile with 8-bit activations)
PROFILES = {"nnapi": ["--for", "nnapi", "--quantize", "int8"],
            "coreml": ["--for", "coreml", "--quantize", "none"],
            "qnn": ["--for", "qnn", "--quantize", "int8"],
            "qnn8": ["--for", "qnn", "--quantize", "int8", "--activation-bits", "8"]}
# The goals, each stated once
GOALS = {"one_partition": 0.99, "agreement": 0.99, "metric_points": 1.0}
LATENCY_ROWS = 100


def _recipe(folder: Path) -> dict:
    return yaml.safe_load((folder / "recipe.resolved.yaml").read_text(encoding="utf-8"))


def _data(recipe: dict, split: str) -> str:
    base = Path(recipe["data"]["dir"])
    if not base.is_absolute() and not base.exists():  # (as written in recipes/NAME.yaml:
        base = ROOT / "recipes" / base                 #  relative to that folder)
    return str(base / recipe["data"][split])


def export_one(case: str, folder: Path, profile: str, out: Path, simulator_rows: int) -> dict:
    """One `edgetransfer export --for`, run once (its export.json reused after)."""
    recipe, dst = _recipe(folder), out / case / profile
    log = out / case / f"{profile}.log"
    if not (dst / "export.json").is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "edgetransfer", "export", "--model",
               str(folder / "student"), "--out", str(dst), "--overwrite",
               "--eval-data", _data(recipe, "test"), "--calibration-data",
               _data(recipe, "train"), "--max-accuracy-drop", "100",
               "--qnn-simulator-rows", str(simulator_rows), *PROFILES[profile]]
        if recipe["task"] != "image-classification":
            cmd += ["--max-length", str(recipe["data"]["max_length"])]
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        with log.open("w") as f:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        if rc:
            tail = [line for line in log.read_text().splitlines() if line.strip()][-1:]
            return {"profile": profile, "failed": tail[0] if tail else f"exit {rc}"}
        print(f"  {profile}: {time.perf_counter() - t0:.0f} s", flush=True)
    return figures(profile, json.loads((dst / "export.json").read_text()))


def figures(profile: str, record: dict) -> dict:
    metric = record["metric"]
    acc, final = record["accelerator"], record["parity"]["final"]
    agreement = min(o.get("top1_agreement", 1.0) for o in final["outputs"].values())
    row = {"profile": profile, "metric": metric, "value": record.get(metric),
           "fp32": record.get(f"fp32_onnx_{metric}"), "agreement": agreement,
           "size_mb": round(record["size_bytes"] / 2**20, 2),
           "quantization": record["quantization"].get("activation_type", "float"),
           "opset": record["quantization"].get("opset", record["opset"]),
           "sequence_length": acc.get("sequence_length"), "coverage": acc["coverage"],
           "wall_s": record.get("wall_time_s")}
    if "simulator" in acc:
        sim = record["parity"]["qnn_simulator"]["outputs"]
        row["simulator"] = acc["simulator"] | {"agreement": min(
            o.get("top1_agreement", 1.0) for o in sim.values())}
    return row


def latencies(case: str, folder: Path, out: Path, rows: list[dict]) -> dict:
    """Batch-1 p50 on the CPU provider, one thread, interleaved: the recipe's fused CPU
    export beside each profile's model, on the first test rows one at a time."""
    from edgetransfer import tasks
    from edgetransfer.measure import latency, scoring
    from edgetransfer.modeling import backbones
    from edgetransfer.stages import export

    recipe = _recipe(folder)
    student = str(folder / "student")
    bb = backbones.resolve(student, False)
    task = tasks.resolve(None, config=bb.config, folder=Path(student), where=student)
    length = recipe["data"]["max_length"]
    cfg = export.ExportConfig(model=student, out=out / "unused", eval_data=_data(recipe, "test"),
                              max_length=length)
    ds = task.read_eval(cfg.eval_data, bb.head_labels(task), cfg)
    singles = scoring.singles(task, task.load_preprocessor(bb), ds, length, LATENCY_ROWS)
    models = {"cpu (fused int8-dynamic)" if task.name != "image-classification"
              else "cpu (int8-static)": folder / "onnx-int8" / "model.onnx"}
    models |= {r["profile"]: out / case / r["profile"] / "model.onnx" for r in rows
               if "failed" not in r}
    jobs = {}
    for name, path in models.items():
        session = latency.ort_session(path, 1)
        jobs[name] = ((lambda b, s=session: s.run(None, latency.feeds_for(s, b))), singles)
    times = latency.interleaved(jobs, iterations=300, rounds=10, warmup=10)
    return {name: latency.summarize(t) for name, t in times.items()}


def _moved(value: float, fp32: float) -> float:
    """The metric's move from the fp32 graph's, in points."""
    return (value - fp32) * 100


def render(result: dict) -> str:
    lines = [f"## Exports an NPU takes (`bench/npu_exports.py`, issue 30), {result['date']}",
             "", result["note"], ""]
    goal_rows = []
    for case, c in result["cases"].items():
        lines += [f"### {case}: {c['student']}", "",
                  "| profile | activations | one partition (share of nodes) | partitions | "
                  "refused ops | agreement with PyTorch | metric (fp32 ONNX) | "
                  "simulator: agreement, metric | MB | CPU p50 ms |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lat = c.get("latency", {})
        for name, p50 in lat.items():
            if name.startswith("cpu"):
                kind = "dynamic" if "dynamic" in name else "static"
                lines.append(f"| {name} | {kind} | (the CPU export, for comparison: not "
                             f"checked) | | | | | | | {p50['p50_ms']:.2f} |")
        for r in c["rows"]:
            if "failed" in r:
                lines.append(f"| {r['profile']} | failed: {r['failed'][:160]} | | | | | | | "
                             f"| |")
                continue
            cov = r["coverage"]
            share = cov.get("largest_partition_share", cov.get("htp_share"))
            parts = cov.get("partitions", "HTP" if "htp_nodes" in cov else "")
            refused = ", ".join(o.split(":")[-1] for o in cov.get("refused_ops", [])) or "none"
            if "htp_nodes" in cov:
                refused = f"{cov['htp_nodes']}/{cov['nodes']} on HTP, ctx " \
                          f"{cov['context_bytes'] / 2**20:.1f} MB"
            sim = r.get("simulator")
            simtext = (f"{sim['agreement']:.3f}, {sim[r['metric']]:.4f} "
                       f"({sim['fp32_onnx_' + r['metric']]:.4f}) on {sim['rows']} rows"
                       if sim else "")
            p50 = lat.get(r["profile"], {}).get("p50_ms")
            lines.append(f"| {r['profile']} | {r['quantization']} | {share:.1%} | {parts} | "
                         f"{refused} | {r['agreement']:.3f} | {r['value']:.4f} "
                         f"({r['fp32']:.4f}) | {simtext} | {r['size_mb']} | "
                         + (f"{p50:.2f} |" if p50 else "|"))
            goal_rows.append((case, r))
        lines.append("")
    lines += ["Goals (issue 30):", "", "| case | profile | goal | measured | met? |",
              "| --- | --- | --- | --- | --- |"]
    for case, r in goal_rows:
        cov = r["coverage"]
        if "largest_partition_share" in cov:
            v = cov["largest_partition_share"]
            lines.append(f"| {case} | {r['profile']} | one partition >= 99% of nodes | "
                         f"{v:.1%} | {'**yes**' if v >= GOALS['one_partition'] else 'no'} |")
        elif "htp_nodes" in cov:
            ok = cov["htp_nodes"] == cov["nodes"] and cov["context_written"]
            lines.append(f"| {case} | {r['profile']} | every node on HTP, context written | "
                         f"{cov['htp_nodes']}/{cov['nodes']} | {'**yes**' if ok else 'no'} |")
        if r["quantization"] != "float":
            moved = _moved(r["value"], r["fp32"])
            ok = r["agreement"] >= GOALS["agreement"] and -moved <= GOALS["metric_points"]
            lines.append(f"| {case} | {r['profile']} | CPU QDQ vs fp32: agreement >= 99%, "
                         f"metric within 1 pt | {r['agreement']:.3f}, {moved:+.2f} pt | "
                         f"{'**yes**' if ok else 'no'} |")
        sim = r.get("simulator")
        if sim:
            moved = _moved(sim[r["metric"]], sim["fp32_onnx_" + r["metric"]])
            ok = sim["agreement"] >= GOALS["agreement"] and -moved <= GOALS["metric_points"]
            lines.append(f"| {case} | {r['profile']} | HTP simulator vs fp32: agreement >= "
                         f"99%, metric within 1 pt | {sim['agreement']:.3f}, {moved:+.2f} pt "
                         f"| {'**yes**' if ok else 'no'} |")
    lines += ["", "![CPU latency and coverage per profile](npu.png)", ""]
    return "\n".join(lines) + "\n"


def readme_table(result: dict) -> str:
    """README's measured table: per student and profile, the coverage, the int8 model's
    agreement and metric against the fp32 graph (CPU provider; QNN's simulator too), and
    the CPU cost beside the fused CPU export."""
    lines = [f"Measured {result['date']} by `bench/npu_exports.py` on the recipes' students "
             "(details, the goals and the plot: bench/RESULTS.md, \"Exports an NPU "
             "takes\"). Agreement: top-1 with the PyTorch student; metric: the int8 model's "
             "against the fp32 graph's, in points; CPU: batch-1 p50 on the CPU provider "
             "against the fused CPU export's.", "",
             "| student | `--for` | one partition / on HTP | agreement | metric | "
             "QNN simulator: agreement, metric | CPU p50 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for case, c in result["cases"].items():
        lat = c.get("latency", {})
        cpu = next((v["p50_ms"] for k, v in lat.items() if k.startswith("cpu")), None)
        for r in c["rows"]:
            if "failed" in r:
                lines.append(f"| {case} | {r['profile']} | failed | | | | |")
                continue
            cov = r["coverage"]
            share = (f"{cov['htp_nodes']}/{cov['nodes']}" if "htp_nodes" in cov else
                     f"{cov['largest_partition_share']:.1%}")
            quantized = r["quantization"] != "float"
            delta = f"{_moved(r['value'], r['fp32']):+.2f} pt" if quantized else "float"
            sim = r.get("simulator")
            simtext = (f"{sim['agreement']:.3f}, "
                       f"{_moved(sim[r['metric']], sim['fp32_onnx_' + r['metric']]):+.2f} pt"
                       if sim else "")
            p50 = lat.get(r["profile"], {}).get("p50_ms")
            cost = f"{p50:.2f} ms ({cpu:.2f})" if p50 and cpu else ""
            lines.append(f"| {case} | {r['profile']} | {share} | "
                         f"{r['agreement']:.3f} | {delta} | {simtext} | {cost} |")
    return "\n".join(lines) + "\n"


def replace_between(path: Path, text: str, tag: str) -> None:
    """The text between `<!-- tag -->` and `<!-- /tag -->` in `path` replaced (the markers
    must be there: where the table goes is the page's choice)."""
    start, end = f"<!-- {tag} -->", f"<!-- /{tag} -->"
    old = path.read_text(encoding="utf-8")
    if start not in old or end not in old:
        raise SystemExit(f"{path}: no {start} ... {end} markers to write the table between")
    head, rest = old.split(start, 1)
    path.write_text(f"{head}{start}\n{text}{end}{rest.split(end, 1)[1]}", encoding="utf-8")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(result["cases"])
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.6), squeeze=False)
    for ax, case in zip(axes[0], cases):
        lat = result["cases"][case].get("latency", {})
        names = list(lat)
        ax.barh(names, [lat[n]["p50_ms"] for n in names], color="#4c72b0")
        ax.set_xlabel("CPU p50 ms, batch 1, 1 thread")
        ax.set_title(case)
        ax.invert_yaxis()
    fig.suptitle("Fixed-shape NPU exports on the CPU provider: the bucket's cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", default=[], metavar="NAME=FOLDER")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/npu")
    ap.add_argument("--profiles", type=lambda v: v.split(","), default=list(PROFILES))
    ap.add_argument("--simulator-rows", type=int, default=200)
    ap.add_argument("--note", default="")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--results-md", type=Path, default=ROOT / "bench/RESULTS.md")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md",
                    help="the page whose npu_exports markers take the summary table")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "npu.json"
    if args.render_only:
        result = json.loads(saved.read_text())
    else:
        result = {"date": date.today().isoformat(), "environment": environment(),
                  "cases": json.loads(saved.read_text())["cases"] if saved.is_file() else {}}
        for spec in args.case:
            case, folder = spec.split("=", 1)
            folder = Path(folder).resolve()
            rows = [export_one(case, folder, p, args.out, args.simulator_rows)
                    for p in args.profiles]
            result["cases"][case] = {"student": str(folder / "student"), "rows": rows,
                                     "latency": latencies(case, folder, args.out, rows)}
            saved.write_text(json.dumps(result, indent=1))
        env = result["environment"]
        load = open("/proc/loadavg").read().split()[0]
        result["note"] = (f"{args.note} Machine: {env['machine']['cpu']}, "
                          f"{env['machine']['logical_cpus']} logical CPUs (load average "
                          f"{load} at the end: above 2, other work shared them); onnxruntime "
                          f"{env.get('versions', {}).get('onnxruntime', '?')}, onnxruntime-qnn "
                          f"{env.get('versions', {}).get('onnxruntime-qnn', '?')} (QNN HTP "
                          f"compiled and simulated on x86: it proves the graph compiles and "
                          f"what HTP's arithmetic gives, not on-device speed). "
                          f"Agreement: top-1 with the PyTorch student on the export's parity "
                          f"rows (probes and test rows); metric on the recipe's test split, "
                          f"the fp32 ONNX graph's in brackets; QNN's simulator on the first "
                          f"{args.simulator_rows} test rows. CPU p50: {LATENCY_ROWS} test "
                          f"rows one at a time, models interleaved.").strip()
        saved.write_text(json.dumps(result, indent=1))
    plot(result, args.out / "npu.png")
    (ROOT / "bench/npu.png").write_bytes((args.out / "npu.png").read_bytes())
    write_section(args.results_md, render(result), "npu")
    if args.readme:
        replace_between(args.readme, readme_table(result), "npu_exports")
    print(render(result))


if __name__ == "__main__":
    main()
