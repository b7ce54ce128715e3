"""The report as one self-contained HTML file: tables and an inline SVG chart per fleet, drawn
here (no script, no stylesheet, font or image fetched: the page's Content-Security-Policy forbids
every fetch).

Every text a server or the store supplied goes through `printable` and then jinja2's autoescape,
so a server named `<script>` shows as that text.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from phoenix.atomic import write_atomic
from phoenix.config import Severity
from phoenix.errors import ReportError
from phoenix.report.build import FleetReport, Report, span
from phoenix.text import printable

TEMPLATE = resources.files("phoenix") / "data" / "report.html.j2"

# the chart's geometry, in SVG user units (pixels)
LABEL_WIDTH = 200  # server names, right-aligned before the bars
AGE_WIDTH = 420  # the age bars
GAP = 90  # between the age bars and the findings bars (the age is written there)
FINDINGS_WIDTH = 200
ROW = 22
BAR = 14
TOP = 34  # the column titles above the first row
BOTTOM = 12
WIDTH = LABEL_WIDTH + AGE_WIDTH + GAP + FINDINGS_WIDTH + 40


@dataclass(frozen=True, kw_only=True)
class Rect:
    x: float
    width: float
    css: str  # its class: the fill
    title: str  # shown on hover


@dataclass(frozen=True, kw_only=True)
class ChartRow:
    y: float  # the top of its bars
    label: str
    age: Rect
    age_text: str
    findings: list[Rect]  # one per severity found, stacked; none when clean or never scanned
    findings_text: str


@dataclass(frozen=True, kw_only=True)
class Chart:
    width: int
    height: int
    rows: list[ChartRow]
    max_age_x: float | None  # where the max_age line is drawn
    max_age: str | None
    findings_x: int


def chart(fleet: FleetReport) -> Chart:
    """Server ages against max_age (bars and a line), and each server's last findings."""
    scale = max([fleet.max_age_seconds or 0.0, *(s.age_seconds for s in fleet.servers)]) * 1.1
    per_second = AGE_WIDTH / scale if scale > 0 else 0.0
    most = max([1, *(sum(s.findings.values()) for s in fleet.servers)])
    findings_x = LABEL_WIDTH + AGE_WIDTH + GAP
    rows = []
    for number, s in enumerate(fleet.servers):
        over = fleet.max_age_seconds is not None and s.age_seconds > fleet.max_age_seconds
        age = Rect(
            x=LABEL_WIDTH,
            width=max(1.0, s.age_seconds * per_second),
            css="old" if over else "age",
            title=f"{s.name}: {span(s.age_seconds)} old",
        )
        stacked: list[Rect] = []
        x = float(findings_x)
        for severity in reversed(Severity):  # high first
            n = s.findings.get(severity.value, 0)
            if n:
                width = FINDINGS_WIDTH * n / most
                title = f"{s.name}: {n} {severity.value}"
                stacked.append(Rect(x=x, width=width, css=severity.value, title=title))
                x += width
        total = sum(s.findings.values())
        rows.append(
            ChartRow(
                y=TOP + number * ROW,
                label=s.name,
                age=age,
                age_text=span(s.age_seconds),
                findings=stacked,
                findings_text=str(total) if s.last_scan else "not scanned",
            )
        )
    line = LABEL_WIDTH + fleet.max_age_seconds * per_second if fleet.max_age_seconds else None
    return Chart(
        width=WIDTH,
        height=TOP + max(1, len(rows)) * ROW + BOTTOM,
        rows=rows,
        max_age_x=line,
        max_age=fleet.max_age,
        findings_x=findings_x,
    )


def to_html(report: Report) -> str:
    import jinja2  # here: it is slow to import, and only the HTML report needs it

    env = jinja2.Environment(autoescape=True, finalize=_shown, undefined=jinja2.StrictUndefined)
    env.filters["span"] = span
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    charts = {f.name: chart(f) for f in report.fleets}
    return str(template.render(report=report, charts=charts, bar=BAR))


def _shown(value: object) -> object:
    """What every `{{ }}` of the template prints: text escaped by `printable`, then autoescaped."""
    return printable(value) if isinstance(value, str) else value


def write_html(path: Path, report: Report) -> None:
    """Write the report to `path` whole or not at all."""
    text = to_html(report)
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ReportError(
            f"cannot write the HTML report {path}: {exc.strerror}",
            hint="name a file in a directory phoenix may write to",
        ) from None
