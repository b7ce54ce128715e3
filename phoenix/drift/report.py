"""Drift reports for machines and people: JSON, JUnit XML (for CI), HTML (jinja2).

Whatever a server named its files, both documents stay valid and show it as it is: every text goes
through `printable` (no control character, no character XML forbids, even escaped), then the XML
writer or jinja2's autoescape quotes `<`, `&` and the quotes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from importlib import resources
from pathlib import Path

from phoenix.atomic import write_atomic
from phoenix.drift.scan import ScanReport, ScanStatus
from phoenix.text import printable

TEMPLATE = resources.files("phoenix") / "data" / "drift.html.j2"


def to_junit(report: ScanReport) -> str:
    """One test suite per fleet, one test case per server; drift is a failure, no scan an error."""
    root = ET.Element("testsuites", name="phoenix drift", timestamp=printable(report.scanned_at))
    for fleet in sorted({s.fleet for s in report.servers}):
        servers = [s for s in report.servers if s.fleet == fleet]
        suite = ET.SubElement(
            root, "testsuite", name=printable(f"drift.{fleet}"), tests=str(len(servers))
        )
        failures = errors = 0
        for s in servers:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=printable(f"drift.{fleet}"),
                name=printable(s.name),
                time=f"{s.seconds:.2f}",
            )
            if not s.status.scanned:
                errors += 1
                ET.SubElement(case, "error", message=printable(f"{s.status}: {s.error}"))
            elif s.status is ScanStatus.DRIFTED:
                failures += 1
                body = "\n".join(  # one finding a line: printable escapes any newline in one
                    printable(f"[{f.severity}] {f.kind} {f.subject}: {f.before} -> {f.after}")
                    for f in s.findings
                )
                ET.SubElement(case, "failure", message=f"{len(s.findings)} finding(s)").text = body
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def to_html(report: ScanReport) -> str:
    import jinja2  # here: it is slow to import, and only the HTML report needs it

    counts = Counter(s.status for s in report.servers)
    env = jinja2.Environment(autoescape=True, finalize=_shown)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return str(template.render(report=report, counts=dict(counts)))


def _shown(value: object) -> object:
    """What every `{{ }}` of the template prints: text escaped by `printable`, then autoescaped."""
    return printable(value) if isinstance(value, str) else value


def write(path: Path, text: str) -> None:
    write_atomic(path, text)
