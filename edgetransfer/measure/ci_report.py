"""verify's report in the two forms CI systems read: JUnit XML (one test case per gate and
model: every CI shows those as tests, failed ones with their message) and a Markdown summary
short enough for a pull-request comment or GitHub's job summary.

Rendered from verify.json's dict alone, so a report can be re-rendered later; written even
when gates fail (that is when CI needs them).
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

# verify's gates, in the order their failures decide the exit code (stages/verify.check)
GATES = ("parity", "accuracy", "latency")


def cases(report: dict) -> list[dict]:
    """One case per gate a model went through: {gate, model, passed, message, detail}."""
    failures = {(f["gate"], f["model"]): f["message"] for f in report["failures"]}
    metric = report.get("metric", "accuracy")
    out = []
    for c in report["candidates"]:
        name = c["name"]
        parity = c.get("parity") or {}
        if parity.get("applies", bool(parity)):
            out.append({"gate": "parity", "model": name,
                        "message": failures.get(("parity", name)),
                        "detail": f"{c['precision']} against {parity.get('against', 'source')}"})
        drop = (c.get("accuracy_drop") or {}).get(metric) or {}
        out.append({"gate": "accuracy", "model": name,
                    "message": failures.get(("accuracy", name)),
                    "detail": f"{metric} {c['metrics'].get(metric)}, drop "
                              f"{drop.get('points')} points"})
    for row in (report.get("latency_gate") or {}).get("rows", []):
        out.append({"gate": "latency", "model": f"{row['model']} {row['batch']}",
                    "message": failures.get(("latency", row["model"])) if not row["passed"]
                    else None,
                    "detail": f"p50 {row['p50_ms']} ms ({100 * row['change']:+.1f}% "
                              f"against the baseline, relative to the workload)"})
    for case in out:
        case["passed"] = case["message"] is None
    return out


def junit(report: dict) -> str:
    """JUnit XML: a <testsuite> per gate, a <testcase> per model."""
    all_cases = cases(report)
    suites = ET.Element("testsuites", name="edgetransfer verify",
                        tests=str(len(all_cases)),
                        failures=str(sum(not c["passed"] for c in all_cases)),
                        time=str(report.get("wall_time_s", 0)))
    for gate in GATES:
        mine = [c for c in all_cases if c["gate"] == gate]
        if not mine:
            continue
        suite = ET.SubElement(suites, "testsuite", name=f"verify.{gate}", tests=str(len(mine)),
                              failures=str(sum(not c["passed"] for c in mine)))
        for c in mine:
            case = ET.SubElement(suite, "testcase", classname=f"verify.{gate}", name=c["model"])
            if not c["passed"]:
                ET.SubElement(case, "failure", message=c["message"], type=f"{gate}-gate").text = \
                    c["detail"]
            else:
                ET.SubElement(case, "system-out").text = c["detail"]
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def markdown(report: dict) -> str:
    """A pull-request comment: the verdict, a row per model, the failures."""
    metric = report.get("metric", "accuracy")
    verdict = "passed" if report["passed"] else f"FAILED ({len(report['failures'])} gate(s))"
    lines = [f"### edgetransfer verify: {verdict}", "",
             f"{report['task']} on `{report['data']['path']}` ({report['data']['examples']} "
             f"examples); {report['env']['machine'].get('cpu')}, {report['env']['threads']} "
             f"thread(s).", "",
             f"| model | precision | {metric} | drop pts | parity | p50 ms (batch 1) | "
             f"vs baseline | gates |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = {(r["model"], r["batch"]): r for r in (report.get("latency_gate") or {})
            .get("rows", [])}
    for m in [report["reference"]] + report["candidates"]:
        lat = (m.get("latency") or {}).get("batch1") or {}
        base = rows.get((m["name"], "batch1"))
        drop = (m.get("accuracy_drop") or {}).get(metric) or {}
        parity = m.get("parity")
        lines.append(
            f"| {m['name']} | {m['precision']} | {m['metrics'].get(metric, 0):.4f} | "
            f"{'' if not drop else format(drop['points'], '+.2f')} | "
            f"{'' if parity is None else 'pass' if parity.get('passed') else 'FAIL'} | "
            f"{lat.get('p50_ms', '')} | "
            f"{'' if base is None else format(100 * base['change'], '+.1f') + '%'} | "
            f"{'pass' if m.get('passed', True) else 'FAIL'} |")
    if report["failures"]:
        lines += ["", "Failures:", ""]
        lines += [f"- **{f['gate']}** `{f['model']}`: {f['message']}" for f in report["failures"]]
    return "\n".join(lines) + "\n"
