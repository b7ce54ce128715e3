"""Drift reports for machines and people: JSON, JUnit XML (for CI), HTML (jinja2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from importlib import resources
from pathlib import Path

import jinja2

from phoenix.atomic import write_atomic
from phoenix.drift.scan import ScanReport, ScanStatus

TEMPLATE = resources.files("phoenix") / "data" / "drift.html.j2"


def to_junit(report: ScanReport) -> str:
    """One test suite per fleet, one test case per server; drift is a failure, no scan an error."""
    root = ET.Element("testsuites", name="phoenix drift", timestamp=report.scanned_at)
    for fleet in sorted({s.fleet for s in report.servers}):
        servers = [s for s in report.servers if s.fleet == fleet]
        suite = ET.SubElement(root, "testsuite", name=f"drift.{fleet}", tests=str(len(servers)))
        failures = errors = 0
        for s in servers:
            case = ET.SubElement(
                suite, "testcase", classname=f"drift.{fleet}", name=s.name, time=f"{s.seconds:.2f}"
            )
            if not s.status.scanned:
                errors += 1
                ET.SubElement(case, "error", message=f"{s.status}: {s.error}")
            elif s.status is ScanStatus.DRIFTED:
                failures += 1
                body = "\n".join(
                    f"[{f.severity}] {f.kind} {f.subject}: {f.before} -> {f.after}"
                    for f in s.findings
                )
                ET.SubElement(case, "failure", message=f"{len(s.findings)} finding(s)").text = body
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def to_html(report: ScanReport) -> str:
    counts = Counter(s.status for s in report.servers)
    template = jinja2.Template(TEMPLATE.read_text(encoding="utf-8"), autoescape=True)
    return str(template.render(report=report, counts=dict(counts)))


def write(path: Path, text: str) -> None:
    write_atomic(path, text)
