"""Reports people read: every fleet's servers, ages, drift, due servers, schedules and runs, as
text (phoenix/cli), JSON, one self-contained HTML file, and metrics for node_exporter."""

from phoenix.report import metrics
from phoenix.report.build import (
    DueOf,
    FleetReport,
    Report,
    RunRow,
    ScheduleRow,
    ServerRow,
    build,
    span,
)
from phoenix.report.html import to_html, write_html
from phoenix.report.metrics import registry_of, write_metrics

__all__ = [
    "DueOf",
    "FleetReport",
    "Report",
    "RunRow",
    "ScheduleRow",
    "ServerRow",
    "build",
    "metrics",
    "registry_of",
    "span",
    "to_html",
    "write_html",
    "write_metrics",
]
