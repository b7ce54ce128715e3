"""HAProxy's runtime API read: server states, statistics and replies, parsed into plain records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from phoenix.errors import TrafficError

SERVING_WEIGHT = 1

# srv_op_state in `show servers state` (HAProxy's enum srv_state).
OP_STOPPED = 0  # down: its checks fail


OP_STARTING = 1  # up, warming up (slowstart)


OP_RUNNING = 2  # up


OP_STOPPING = 3  # up but soft-stopping (an agent or a 404 check asked for it)


OP_STATES = {OP_STOPPED: "down", OP_STARTING: "starting", OP_RUNNING: "up", OP_STOPPING: "stopping"}


# srv_admin_state in `show servers state`: a mask (HAProxy's enum srv_admin).
ADMIN_FORCED_MAINT = 0x01  # `set server ... state maint`, or a runtime-added server not yet enabled


ADMIN_INHERITED_MAINT = 0x02  # from a tracked server


ADMIN_CONFIG_MAINT = 0x04  # `disabled` in the configuration


ADMIN_FORCED_DRAIN = 0x08  # `set server ... state drain`


ADMIN_INHERITED_DRAIN = 0x10  # from a tracked server


ADMIN_RESOLVE_MAINT = 0x20  # its FQDN did not resolve


ADMIN_MAINT = ADMIN_FORCED_MAINT | ADMIN_INHERITED_MAINT | ADMIN_CONFIG_MAINT | ADMIN_RESOLVE_MAINT


ADMIN_DRAIN = ADMIN_FORCED_DRAIN | ADMIN_INHERITED_DRAIN


# srv_check_result in `show servers state` (1 neutral and 2 failed are not looked at).
CHECK_UNKNOWN = 0  # no check has completed since the server was (re)enabled


CHECK_PASSED = 3


CHECK_CONDPASS = 4  # passed, but the server asks for no new sessions


_OK_REPLIES = frozenset({"", "New server registered.", "Server deleted."})


STILL_CONNECTED = "Server still has connections attached to it"


@dataclass(frozen=True, kw_only=True)
class Backend:
    """One server of a fleet's backend, as HAProxy sees it now.

    `op_state` is HAProxy's operational state: 0 down (checks fail), 1 starting (slowstart),
    2 running (UP), 3 stopping (UP, soft-stopping). `admin_state` is a mask of the ADMIN_* flags
    (maintenance, drain). `sessions` is `scur` from `show stat`: requests being served now.
    `weight` is 0 for a server added but not yet let in by `wait_up`. `check_result` is one of
    the CHECK_* values; `check_status` and `check_detail` are HAProxy's words for the last check
    (like "L4CON", "Connection refused").
    """

    name: str
    address: str
    port: int
    op_state: int
    admin_state: int
    sessions: int
    weight: int = SERVING_WEIGHT
    check_result: int = CHECK_UNKNOWN
    check_status: str = ""
    check_detail: str = ""

    @property
    def in_maintenance(self) -> bool:
        return bool(self.admin_state & ADMIN_MAINT)

    @property
    def draining(self) -> bool:
        return bool(self.admin_state & ADMIN_DRAIN)

    @property
    def healthy(self) -> bool:
        """UP, and neither in maintenance nor draining."""
        return self.op_state == OP_RUNNING and not self.in_maintenance and not self.draining

    def describe(self) -> str:
        """Like 'down (maint), last check L4CON: Connection refused'."""
        state = OP_STATES.get(self.op_state, f"op_state {self.op_state}")
        flags = [
            word for word, on in (("maint", self.in_maintenance), ("drain", self.draining)) if on
        ]
        if flags:
            state += f" ({', '.join(flags)})"
        if self.check_status:
            detail = f": {self.check_detail}" if self.check_detail else ""
            state += f", last check {self.check_status}{detail}"
        return state


def reply_error(command: str, reply: str) -> str | None:
    """HAProxy's complaint in `reply` to `command`, or None when the reply means success.

    Actions answer nothing, or "New server registered." / "Server deleted."; anything else
    ("No such server.", "Unknown command...", "Only servers in maintenance mode can be
    deleted.", "Require 'backend/server'.", ...) is a refusal. A `show` command succeeds when its
    dump starts as expected. No reply at all (the connection closed before HAProxy wrote even
    the empty line that ends every answer) leaves the outcome unknown: an error too.
    """
    if not reply:
        return "(no reply)"
    text = reply.strip()
    if command.startswith("show servers state"):
        ok = text.startswith("1\n# be_id")
    elif command.startswith("show stat"):
        ok = text.startswith("# pxname,")
    elif command.startswith("show "):
        ok = bool(text) and not _looks_refused(text)
    else:
        ok = text in _OK_REPLIES
    if ok:
        return None
    return text or "(no reply)"


def _looks_refused(text: str) -> bool:
    first = text.splitlines()[0]
    return first.startswith(("No such", "Unknown", "Can't", "Require", "Permission denied"))


def parse_servers_state(text: str) -> list[dict[str, str]]:
    """`show servers state`: one dict per server, keyed by the header's column names.

    The dump is a format version line ("1"), a header "# be_id be_name srv_id srv_name srv_addr
    srv_op_state srv_admin_state ...", then one space-separated line per server.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0].strip() != "1" or not lines[1].startswith("#"):
        raise TrafficError(f"unexpected `show servers state` output: {text[:200]!r}")
    columns = lines[1].lstrip("#").split()
    rows = []
    for line in lines[2:]:
        if line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < len(columns):
            raise TrafficError(f"short `show servers state` line: {line!r}")
        rows.append(dict(zip(columns, fields, strict=False)))
    return rows


def parse_stat(text: str) -> list[dict[str, str]]:
    """`show stat`: one dict per CSV line, keyed by the "# pxname,svname,..." header."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# pxname,"):
        raise TrafficError(f"unexpected `show stat` output: {text[:200]!r}")
    columns = lines[0].removeprefix("# ").split(",")
    return [dict(zip(columns, line.split(","), strict=False)) for line in lines[1:]]


def backends(
    state: Sequence[Mapping[str, str]], stat: Sequence[Mapping[str, str]]
) -> list[Backend]:
    """Join `show servers state` rows with `show stat` rows of the same backend by server name."""
    by_name = {
        row["svname"]: row for row in stat if row.get("svname") not in ("FRONTEND", "BACKEND")
    }
    joined = []
    for row in state:
        counters = by_name.get(row["srv_name"], {})
        joined.append(
            Backend(
                name=row["srv_name"],
                address=row["srv_addr"],
                port=int(row["srv_port"]),
                op_state=int(row["srv_op_state"]),
                admin_state=int(row["srv_admin_state"]),
                sessions=_int(counters.get("scur")),
                weight=int(row["srv_uweight"]),
                check_result=int(row["srv_check_result"]),
                check_status=counters.get("check_status", ""),
                check_detail=counters.get("last_chk", ""),
            )
        )
    return joined


def _int(value: str | None) -> int:
    return int(value) if value else 0


# The classes of HTTP responses `show stat` counts per server (hrsp_1xx ... hrsp_5xx, hrsp_other).
RESPONSE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


@dataclass(frozen=True, kw_only=True)
class Counters:
    """One server's cumulative traffic counters from `show stat` (HAProxy 2.6 management.txt,
    "9.1. CSV format"), counted since the server was added or HAProxy started.

    `responses` maps every class of RESPONSE_CLASSES to hrsp_<class> (a class not given is 0).
    `conn_errors` is econ (failed attempts to connect to the server), `resp_errors` eresp
    (responses that failed, among them srv_abrt), `retries` wretr, `redispatches` wredis.
    `rtime_ms` is rtime, not a counter: HAProxy's average response time in ms over the server's
    last 1024 requests.
    """

    responses: Mapping[str, int] = field(default_factory=dict)
    conn_errors: int = 0
    resp_errors: int = 0
    retries: int = 0
    redispatches: int = 0
    rtime_ms: int = 0
    sessions: int = 0  # stot: every attempt to use the server, answered or not
    ttime_ms: int = 0  # ttime: like rtime, the whole request (body included), not a counter

    def __post_init__(self) -> None:
        unknown = set(self.responses) - set(RESPONSE_CLASSES)
        if unknown:
            raise ValueError(f"not response classes: {sorted(unknown)} (use {RESPONSE_CLASSES})")
        every = {cls: self.responses.get(cls, 0) for cls in RESPONSE_CLASSES}
        object.__setattr__(self, "responses", every)  # so that equal counts compare equal

    def responded(self, status_class: str) -> int:
        """The responses of one class, like "5xx"."""
        return self.responses[status_class]

    @property
    def total(self) -> int:
        """Every response the server gave, whatever its status."""
        return sum(self.responses.values())


# `show stat` column of each Counters field other than `responses`.
_COUNTER_COLUMNS = {
    "conn_errors": "econ",
    "resp_errors": "eresp",
    "retries": "wretr",
    "redispatches": "wredis",
    "rtime_ms": "rtime",
    "sessions": "stot",
    "ttime_ms": "ttime",
}


def counters(stat_rows: Sequence[Mapping[str, str]]) -> dict[str, Counters]:
    """The Counters of every server in `show stat` rows (from `parse_stat`) by server name.

    The FRONTEND and BACKEND rows are skipped; an empty field is 0. A field that is not a whole
    number means the dump is not what this module reads: TrafficError.
    """
    found = {}
    for row in stat_rows:
        name = row.get("svname", "")
        if name in ("FRONTEND", "BACKEND"):
            continue
        responses = {cls: _counter(row, name, f"hrsp_{cls}") for cls in RESPONSE_CLASSES}
        numbers = {key: _counter(row, name, column) for key, column in _COUNTER_COLUMNS.items()}
        found[name] = Counters(responses=responses, **numbers)
    return found


def _counter(row: Mapping[str, str], server: str, column: str) -> int:
    value = row.get(column, "").strip()
    if not value:
        return 0
    if not value.isdecimal():
        raise TrafficError(
            f"HAProxy's `show stat` gave {column} = {value!r} for server {server}, not a count",
            hint="is this HAProxy 2.6 or later? phoenix reads its CSV columns by name",
        )
    return int(value)
