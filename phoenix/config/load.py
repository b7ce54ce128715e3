"""Loading phoenix.toml: found, parsed and validated; every problem named with its file, key, value
and what is allowed.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_core import ErrorDetails

from phoenix.config.models import Config
from phoenix.errors import ConfigError

CONFIG_ENV = "PHOENIX_CONFIG"


HOME_ENV = "PHOENIX_HOME"


CONFIG_NAME = "phoenix.toml"


def config_path(explicit: Path | None) -> Path:
    """The config file to use: --config, else $PHOENIX_CONFIG, else ./phoenix.toml."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else Path.cwd() / CONFIG_NAME


def state_home(config_file: Path) -> Path:
    """Where phoenix keeps its state: $PHOENIX_HOME, else .phoenix next to the config file."""
    from_env = os.environ.get(HOME_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return config_file.absolute().parent / ".phoenix"


def load(path: Path) -> Config:
    """Read and validate a config file; every problem is reported in one ConfigError."""
    data = _read_toml(path)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(path, error) for error in exc.errors()]
        hint = "the phoenix.toml shipped with phoenix shows every key with its default"
        raise ConfigError("\n".join(lines), hint=hint) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        hint = (
            "create one (the repository ships phoenix.toml as an example)"
            " or pass --config / set PHOENIX_CONFIG"
        )
        raise ConfigError(f"no config at {path}", hint=hint) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_problem(path, str(exc))) from None


def _toml_problem(path: Path, message: str) -> str:
    """Reword tomllib's 'What (at line L, column C)' as 'PATH: line L, column C: ...'."""
    found = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", message)
    if found is None:
        return f"{path}: invalid TOML: {message}"
    what, where = found.groups()
    return f"{path}: {where}: invalid TOML: {what[:1].lower()}{what[1:]}"


# What is allowed, for pydantic's own error types whose message reads poorly in a config file.
_ALLOWED = {
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be more than {gt}",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
    "ip_v4_interface": "must be an IPv4 address with a prefix, like 10.213.0.1/24",
    "ip_v4_address": "must be an IPv4 address, like 127.0.0.1",
}


def _describe(path: Path, error: ErrorDetails) -> str:
    """One line: PATH: KEY.PATH: bad value VALUE: WHAT IS ALLOWED."""
    loc = tuple(part for part in error["loc"] if part != "[key]")
    where = f"{path}: {_dotted(loc)}"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key (allowed: {', '.join(_allowed_keys(loc))})"
    if error["type"] == "missing":
        return f"{where}: missing (this key is required)"
    if error["input"] is None:  # TOML has no null: this is a key a validator requires
        return f"{where}: {_allowed(error)}"
    return f"{where}: bad value {_show(error['input'])}: {_allowed(error)}"


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "(top level)"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed(error: ErrorDetails) -> str:
    template = _ALLOWED.get(error["type"])
    if template is not None:
        return template.format(**error.get("ctx", {}))
    message = error["msg"].removeprefix("Value error, ")
    return message.replace("Input should be", "must be")


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys of the model holding the last key of `loc`, found by walking from Config."""
    annotation: Any = Config
    for part in loc[:-1]:
        if get_origin(annotation) in (dict, list):
            annotation = get_args(annotation)[-1]
        elif _is_model(annotation) and str(part) in annotation.model_fields:
            annotation = annotation.model_fields[str(part)].annotation
        else:
            return []
    return list(annotation.model_fields) if _is_model(annotation) else []


def _is_model(annotation: Any) -> bool:
    return (
        isinstance(annotation, type)
        and get_origin(annotation) is None
        and issubclass(annotation, BaseModel)
    )
