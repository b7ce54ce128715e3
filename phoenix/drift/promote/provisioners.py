"""The two provisioners that carry promoted files into a bake, added to the Packer template once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phoenix.atomic import write_atomic
from phoenix.image.template import load_template

SCRIPT_LINE = "sh /tmp/promoted/apply.sh /tmp/promoted"


def add_provisioners(template_file: Path, directory: Path) -> bool:
    """Add the upload of `directory` and the run of apply.sh to the template, once each."""
    template = load_template(template_file)
    source = directory.relative_to(template_file.parent).as_posix()
    steps: list[dict[str, Any]] = template.setdefault("provisioners", [])
    wanted: list[dict[str, Any]] = [
        {"type": "file", "source": source, "destination": "/tmp"},
        {"type": "shell", "inline": [SCRIPT_LINE]},
    ]
    missing = [w for w in wanted if not any(_same(step, w) for step in steps)]
    if not missing:
        return False
    steps += missing
    write_atomic(template_file, dump_json(template) + "\n", mode=0o644)
    return True


def _same(step: Any, wanted: dict[str, Any]) -> bool:
    return isinstance(step, dict) and all(step.get(k) == v for k, v in wanted.items())


def dump_json(value: Any, indent: int = 0, width: int = 100) -> str:
    """JSON with an indent of 2, short lists of plain values on one line (as templates are)."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict) and value:
        items = [f"{inner}{_json(k)}: {dump_json(v, indent + 2, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value:
        flat = _json(value)
        if not any(isinstance(v, dict | list) for v in value) and indent + len(flat) <= width:
            return flat
        items = [f"{inner}{dump_json(v, indent + 2, width)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
