"""phoenix.toml loading: the shipped example loads, every kind of mistake is reported clearly."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from phoenix.config import CanaryConfig, Config, Severity, Strategy, config_path, load, state_home
from phoenix.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "phoenix.toml"

VALID = """
[images.web]

[fleets.web]
image = "web"
size = 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "phoenix.toml"
    path.write_text(text)
    return path


def problem(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.message.startswith(f"{path}: ")
    return caught.value.message


def test_shipped_example_loads() -> None:
    config = load(SHIPPED)
    fleet = config.fleets["web"]
    assert (fleet.image, fleet.size, fleet.listen_port, fleet.max_age) == ("web", 3, 8080, "7d")
    assert fleet.listen == IPv4Address("127.0.0.1")
    assert config.images["web"].health.type == "http"
    assert config.schedules["nightly-web"].cron == "0 3 * * *"
    assert config.lab == Config().lab  # the commented [lab] section shows the defaults
    assert config.drift == Config().drift


def test_defaults(tmp_path: Path) -> None:
    config = load(write(tmp_path, VALID))
    image = config.images["web"]
    assert image.template_path(tmp_path, "web") == tmp_path / "images/web.pkr.json"
    assert (image.health.type, image.health.port, image.health.path) == ("http", 80, "/")
    assert config.fleets["web"].strategy is Strategy.ROLLING
    assert config.drift.fail_on is Severity.LOW
    chosen = load(write(tmp_path, VALID + 'strategy = "blue-green"\n[drift]\nfail_on = "high"\n'))
    assert chosen.fleets["web"].strategy is Strategy.BLUE_GREEN
    assert chosen.drift.fail_on is Severity.HIGH
    assert chosen.fleets["web"].model_dump(mode="json")["strategy"] == "blue-green"
    assert str(config.lab.subnet) == "10.213.0.1/24"


def test_canary_defaults_and_settings(tmp_path: Path) -> None:
    fleet = load(write(tmp_path, VALID)).fleets["web"]
    assert fleet.observe is None and fleet.observe_seconds is None
    assert fleet.canary == CanaryConfig(
        min_requests=20,
        error_margin=0.02,
        conn_error_margin=0.02,
        latency_factor=3.0,
        latency_floor_ms=50,
        max_error_rate=0.05,
        max_conn_error_rate=0.05,
        max_response_ms=1000,
    )
    text = VALID + 'observe = "2m"\n[fleets.web.canary]\nmin_requests = 100\nlatency_factor = 2\n'
    chosen = load(write(tmp_path, text)).fleets["web"]
    assert (chosen.observe, chosen.observe_seconds) == ("2m", 120)
    assert (chosen.canary.min_requests, chosen.canary.latency_factor) == (100, 2.0)
    assert chosen.canary.error_margin == 0.02


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5), ("30s", 30), ("2m", 120), ("60m", 3600), ("1h", 3600)]
)
def test_observe_durations(tmp_path: Path, text: str, seconds: int) -> None:
    fleet = load(write(tmp_path, VALID + f'observe = "{text}"\n')).fleets["web"]
    assert fleet.observe_seconds == seconds


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "nope.toml")
    assert caught.value.message == f"no config at {tmp_path / 'nope.toml'}"
    assert caught.value.hint is not None and "PHOENIX_CONFIG" in caught.value.hint


def test_invalid_toml_names_line_and_column(tmp_path: Path) -> None:
    message = problem(tmp_path, '[fleets.web]\nimage = "web"\nsize = \n')
    assert "line 3, column 8: invalid TOML" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            VALID + "colour = 1\n",
            "fleets.web.colour: unknown key (allowed: image, size, port, listen,",
            id="unknown-nested-key",
        ),
        pytest.param(
            "colour = 1\n" + VALID,
            "colour: unknown key"
            " (allowed: lab, images, fleets, drift, schedules, timeouts, terraform, lxd)",
            id="unknown-top-level-key",
        ),
        pytest.param(
            VALID.replace("size = 3", 'size = "three"'),
            "fleets.web.size: bad value 'three': must be a valid integer",
            id="wrong-type",
        ),
        pytest.param(
            VALID.replace("size = 3", "size = true"),
            "fleets.web.size: bad value true: must be a valid integer",
            id="bool-is-not-int",
        ),
        pytest.param(
            VALID.replace("size = 3", "size = 0"),
            "fleets.web.size: bad value 0: must be at least 1",
            id="size-zero",
        ),
        pytest.param(
            VALID + 'listen = "10.0.0.1"\n',
            "fleets.web.listen: bad value '10.0.0.1': must be a loopback address",
            id="listen-not-loopback",
        ),
        pytest.param(
            VALID.replace('image = "web"', 'image = "api"'),
            "fleets.web.image: bad value 'api': must name an image defined under [images]"
            " (defined: web)",
            id="undefined-image",
        ),
        pytest.param(
            VALID + '[schedules.nightly]\nfleet = "db"\naction = "rebuild"\ncron = "0 3 * * *"\n',
            "schedules.nightly.fleet: bad value 'db': must name a fleet defined under [fleets]"
            " (defined: web)",
            id="undefined-fleet",
        ),
        pytest.param(
            VALID + '[schedules.nightly]\nfleet = "web"\naction = "rebuild"\ncron = "* * *"\n',
            "schedules.nightly.cron: bad value '* * *': not a cron expression: Exactly 5, 6 or 7"
            " columns has to be specified",
            id="cron-3-fields",
        ),
        pytest.param(
            VALID + '[schedules.nightly]\nfleet = "web"\naction = "rebuild"\ncron = "61 * * * *"\n',
            "schedules.nightly.cron: bad value '61 * * * *': not a cron expression:"
            " [61 * * * *] is not acceptable, out of range",
            id="cron-minute-61",
        ),
        pytest.param(
            VALID + '[schedules.nightly]\nfleet = "web"\naction = "drift"\ncron = "0 0 3 * * *"\n',
            "schedules.nightly.cron: bad value '0 0 3 * * *': cron reads 5 fields",
            id="cron-seconds-field",
        ),
        pytest.param(
            VALID + "[images.Web_1]\n",
            "images.Web_1: bad value 'Web_1': must start with a-z",
            id="bad-name",
        ),
        pytest.param(
            VALID + '[lab]\nsubnet = "10.213.0.1/16"\nbuild_subnet = "10.213.5.1/24"\n',
            "lab.build_subnet: bad value '10.213.5.1/24': must not overlap subnet 10.213.0.0/16",
            id="overlapping-subnets",
        ),
        pytest.param(
            VALID + '[lab]\nsubnet = "8.8.8.1/24"\n',
            "lab.subnet: bad value '8.8.8.1/24': must be inside 10.0.0.0/8",
            id="public-subnet",
        ),
        pytest.param(
            VALID + 'max_age = "1w"\n',
            "fleets.web.max_age: bad value '1w': must be a duration like 90m, 24h or 7d",
            id="bad-duration",
        ),
        pytest.param(
            VALID + 'replace_on = "severe"\n',
            "fleets.web.replace_on: bad value 'severe'",
            id="bad-replace-on",
        ),
        pytest.param(
            VALID.replace("[fleets.web]", '[images.web.health]\ntype = "command"\n[fleets.web]'),
            'images.web.health.command: required when type = "command"',
            id="command-check-without-command",
        ),
        pytest.param(
            "[fleets.web]\n",
            "fleets.web.image: missing (this key is required)",
            id="missing-key",
        ),
        pytest.param(
            VALID + 'strategy = "canary"\n',
            "fleets.web.strategy: bad value 'canary': must be one of 'rolling' or 'blue-green'",
            id="bad-strategy",
        ),
        pytest.param(
            VALID + "strategy = 1\n",
            "fleets.web.strategy: bad value 1: must be one of 'rolling' or 'blue-green'",
            id="strategy-not-a-string",
        ),
        pytest.param(
            VALID + 'observe = "30"\n',
            "fleets.web.observe: bad value '30': must be a duration like 30s, 2m or 1h",
            id="observe-without-unit",
        ),
        pytest.param(
            VALID + 'observe = "1d"\n',
            "fleets.web.observe: bad value '1d': must be a duration like 30s, 2m or 1h",
            id="observe-in-days",
        ),
        pytest.param(
            VALID + 'observe = "2s"\n',
            "fleets.web.observe: bad value '2s': must be from 5s to 1h, like 30s or 2m",
            id="observe-too-short",
        ),
        pytest.param(
            VALID + 'observe = "61m"\n',
            "fleets.web.observe: bad value '61m': must be from 5s to 1h",
            id="observe-too-long",
        ),
        pytest.param(
            VALID + "observe = 30\n",
            "fleets.web.observe: bad value 30: must be a valid string",
            id="observe-not-a-string",
        ),
        pytest.param(
            VALID + "[fleets.web.canary]\nerror_margin = 2\n",
            "fleets.web.canary.error_margin: bad value 2: must be at most 1",
            id="rate-above-1",
        ),
        pytest.param(
            VALID + "[fleets.web.canary]\nmax_conn_error_rate = -0.1\n",
            "fleets.web.canary.max_conn_error_rate: bad value -0.1: must be at least 0",
            id="negative-rate",
        ),
        pytest.param(
            VALID + "[fleets.web.canary]\nlatency_factor = 0.5\n",
            "fleets.web.canary.latency_factor: bad value 0.5: must be at least 1",
            id="latency-factor-below-1",
        ),
        pytest.param(
            VALID + "[fleets.web.canary]\nmin_requests = 0\n",
            "fleets.web.canary.min_requests: bad value 0: must be at least 1",
            id="min-requests-zero",
        ),
        pytest.param(
            VALID + "[fleets.web.canary]\nmax_response_ms = 0\n",
            "fleets.web.canary.max_response_ms: bad value 0: must be",
            id="max-response-zero",
        ),
        pytest.param(
            VALID + "[fleets.web.canary]\nmargin = 0.1\n",
            "fleets.web.canary.margin: unknown key (allowed: min_requests, error_margin,",
            id="canary-unknown-key",
        ),
        pytest.param(
            VALID + '[drift]\nfail_on = "severe"\n',
            "drift.fail_on: bad value 'severe': must be one of 'low', 'medium' or 'high'",
            id="bad-fail-on",
        ),
    ],
)
def test_bad_value_is_named(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problem(tmp_path, text)


def test_every_problem_on_its_own_line(tmp_path: Path) -> None:
    text = VALID.replace("size = 3", "size = 0") + 'strategy = "canary"\n[drift]\nroots = ["etc"]\n'
    lines = problem(tmp_path, text).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "fleets.web.size",
        "fleets.web.strategy",
        "drift.roots[0]",
    ]


def test_config_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PHOENIX_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert config_path(None) == tmp_path / "phoenix.toml"
    monkeypatch.setenv("PHOENIX_CONFIG", "/etc/phoenix/fleet.toml")
    assert config_path(None) == Path("/etc/phoenix/fleet.toml")
    assert config_path(Path("explicit.toml")) == Path("explicit.toml")


def test_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PHOENIX_HOME", raising=False)
    assert state_home(tmp_path / "phoenix.toml") == tmp_path / ".phoenix"
    monkeypatch.setenv("PHOENIX_HOME", str(tmp_path / "elsewhere"))
    assert state_home(tmp_path / "phoenix.toml") == tmp_path / "elsewhere"
