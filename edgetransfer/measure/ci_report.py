"""verify's report in the two forms CI systems read: JUnit XML (one test case per gate and
model: every CI shows those as tests, failed ones with their message) and a Markdown summary
short enough for a pull-request comment or GitHub's job summary.

Rendered from verify.json's record alone (records.VerifyReport), so a report can be
re-rendered later; written even when gates fail (that is when CI needs them).
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from ..records import VerifyReport

# verify's gates, in the order their failures decide the exit code (stages/verify.check)
GATES = ("parity", "accuracy", "latency")


def cases(report: VerifyReport) -> list[dict]:
    """One case per gate a model went through: {gate, model, passed, message, detail}."""
    failures = {(f.gate, f.model): f.message for f in report.failures}
    metric = report.metric
    out = []
    for c in report.candidates:
        name, parity = c.name, c.parity
        # (a parity record that does not say whether it applies: one that was taken)
        if parity is not None and parity.applies is not False:
            out.append({"gate": "parity", "model": name,
                        "message": failures.get(("parity", name)),
                        "detail": f"{c.precision} against {parity.against or 'source'}"})
        drop = report.drop(c)
        out.append({"gate": "accuracy", "model": name,
                    "message": failures.get(("accuracy", name)),
                    "detail": f"{metric} {report.score(c)}, drop "
                              f"{drop.points if drop else None} points"})
    for row in report.latency_gate.rows if report.latency_gate else []:
        out.append({"gate": "latency", "model": f"{row.model} {row.batch}",
                    "message": failures.get(("latency", row.model)) if not row.passed
                    else None,
                    "detail": f"p50 {row.p50_ms} ms ({100 * row.change:+.1f}% "
                              f"against the baseline, relative to the workload)"})
    for case in out:
        case["passed"] = case["message"] is None
    return out


def junit(report: VerifyReport) -> str:
    """JUnit XML: a <testsuite> per gate, a <testcase> per model."""
    all_cases = cases(report)
    suites = ET.Element("testsuites", name="edgetransfer verify",
                        tests=str(len(all_cases)),
                        failures=str(sum(not c["passed"] for c in all_cases)),
                        time=str(report.wall_time_s or 0))
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


def markdown(report: VerifyReport) -> str:
    """A pull-request comment: the verdict, a row per model, the failures."""
    metric = report.metric
    verdict = "passed" if report.passed else f"FAILED ({len(report.failures)} gate(s))"
    data, env = report.data, report.env
    lines = [f"### edgetransfer verify: {verdict}", "",
             f"{report.task} on `{data.path}` ({data.examples} examples); "
             f"{env.machine.get('cpu')}, {env.threads} thread(s).", "",
             f"| model | precision | {metric} | drop pts | parity | p50 ms (batch 1) | "
             f"vs baseline | gates |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = {(r.model, r.batch): r for r in
            (report.latency_gate.rows if report.latency_gate else [])}
    for m in report.models:
        lat = (m.latency or {}).get("batch1")
        base = rows.get((m.name, "batch1"))
        drop = report.drop(m)
        parity = m.parity if m.parity is not None and m.parity.applies is not False else None
        lines.append(
            f"| {m.name} | {m.precision} | {report.score(m) or 0:.4f} | "
            f"{'' if drop is None else format(drop.points, '+.2f')} | "
            f"{'' if parity is None else 'pass' if parity.passed else 'FAIL'} | "
            f"{'' if lat is None else lat.p50_ms} | "
            f"{'' if base is None else format(100 * base.change, '+.1f') + '%'} | "
            f"{'pass' if m.passed is not False else 'FAIL'} |")
    if report.failures:
        lines += ["", "Failures:", ""]
        lines += [f"- **{f.gate}** `{f.model}`: {f.message}" for f in report.failures]
    return "\n".join(lines) + "\n"
