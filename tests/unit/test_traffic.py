"""The load balancer without HAProxy running: its configuration, parsers and runtime commands.

The `show ...` outputs and replies below were recorded from HAProxy 2.6.12 (Debian 12) while
tests/integration/test_traffic.py was written; the admin socket is played by a small fake.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from phoenix.config import HealthCheck
from phoenix.errors import TrafficError
from phoenix.fleet.haproxy import balancer as haproxy
from phoenix.fleet.haproxy import config as hconfig
from phoenix.fleet.haproxy import runtime
from phoenix.fleet.haproxy.balancer import HAProxy
from phoenix.fleet.haproxy.runtime import Backend
from phoenix.host.process import CommandResult

# --- recorded output -----------------------------------------------------------------------

STATE_HEADER = (
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state "
    "srv_uweight srv_iweight srv_time_since_last_change srv_check_status "
    "srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
    "srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
)
# One static server, two just registered by `add server ... weight 0` (maintenance).
STATE_ADDED = STATE_HEADER + (
    "3 web 1 web-g1-1 127.0.0.2 2 0 1 1 1 15 3 2 6 0 0 0 - 18001 - 0 0 - - 0\n"
    "3 web 2 web-g2-1 127.0.0.3 0 1 0 0 0 1 0 0 2 0 0 0 - 18001 - 0 0 - - 0\n"
    "3 web 3 web-g2-2 127.0.0.4 0 1 0 0 0 1 0 0 2 0 0 0 - 18001 - 0 0 - - 0\n"
    "\n"
)
# Right after `enable health` + `enable server`: UP (2) before any check ran (result 0).
STATE_ENABLED = STATE_HEADER + (
    "3 web 1 web-g1-1 127.0.0.2 2 0 1 1 1 15 3 2 6 0 0 0 - 18001 - 0 0 - - 0\n"
    "3 web 2 web-g2-1 127.0.0.3 2 0 0 0 0 1 0 1 6 0 0 0 - 18001 - 0 0 - - 0\n"
    "3 web 3 web-g2-2 127.0.0.4 2 0 0 0 0 1 0 1 6 0 0 0 - 18001 - 0 0 - - 0\n"
    "\n"
)
# 1.5 s later, web-g1-1 drained: web-g2-1 passed its check, nothing listens for web-g2-2.
STATE_LATER = STATE_HEADER + (
    "3 web 1 web-g1-1 127.0.0.2 2 8 1 1 0 15 3 2 6 0 0 0 - 18001 - 0 0 - - 0\n"
    "3 web 2 web-g2-1 127.0.0.3 2 0 0 0 2 15 3 2 6 0 0 0 - 18001 - 0 0 - - 0\n"
    "3 web 3 web-g2-2 127.0.0.4 0 0 0 0 1 8 2 0 6 0 0 0 - 18001 - 0 0 - - 0\n"
    "\n"
)
# `set server ... state maint` with a request still running.
STATE_MAINT_ONE = STATE_HEADER + (
    "3 web 1 web-g1-1 127.0.0.2 0 1 1 1 0 15 3 0 14 0 0 0 - 18001 - 0 0 - - 0\n\n"
)
STATE_EMPTY = STATE_HEADER + "\n"

STAT_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,"
    "eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,"
    "qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,"
    "check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,"
    "hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,"
    "comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,"
    "rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,"
    "check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,"
    "cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,"
    "connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,"
    "rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,"
    "need_conn_est,uweight,agg_server_status,agg_server_check_status,"
    "agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,"
    "h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,"
    "h2_goaway_rcvd,h2_detected_conn_protocol_errors,"
    "h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,"
    "h2_open_connections,h2_backend_open_streams,h2_total_connections,"
    "h2_backend_total_streams,h1_open_connections,h1_open_streams,"
    "h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,"
    "h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
)
# `show stat web 4 -1` at the time of STATE_LATER.
STAT_LATER = STAT_HEADER + (
    "web,web-g1-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,1,1,0,0,0,0,0,,1,3,1,,0,,2,0,,0,"
    "L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check passed,,1,2,"
    "2,,,,127.0.0.2:18001,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,"
    ",,,,,,,,,,,,,,,,,,,\n"
    "web,web-g2-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,0,1,0,0,0,2,0,,1,3,2,,0,,2,0,,0,"
    "L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check passed,,1,2,"
    "2,,,,127.0.0.3:18001,,http,,,,,,,,0,0,0,,,0,0,0,0,0,0,0,0,0,0,1,0,,,,-,0,0,0,,"
    ",,,,,,,,,,,,,,,,,,,,\n"
    "web,web-g2-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,0,1,0,1,1,1,1,,1,3,3,,0,,2,0,,0,"
    "L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 "
    "connection problem,,1,2,0,,,,127.0.0.4:18001,,http,,,,,,,,0,0,0,,,0,0,0,0,0,0,"
    "0,0,0,0,1,0,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "\n"
)
# A draining server with one request in flight (scur 1).
STAT_BUSY = STAT_HEADER + (
    "web,web-g1-1,0,0,1,1,,1,0,0,,0,,0,0,0,0,DRAIN,1,1,0,0,0,0,0,,1,3,1,,1,,2,1,,1,"
    "L7OK,200,2,0,0,0,0,0,0,,,,0,0,0,,,,,0,,,0,0,0,0,,,,Layer7 check passed,,1,2,2,"
    ",,,127.0.0.2:18001,,http,,,,,,,,0,1,0,,,0,,0,0,0,0,0,0,0,1,1,1,,,,-,0,0,0,,,,,"
    ",,,,,,,,,,,,,,,,,\n"
    "\n"
)
STAT_IDLE = STAT_BUSY.replace("web,web-g1-1,0,0,1,1,", "web,web-g1-1,0,0,0,1,")
STAT_EMPTY = STAT_HEADER + "\n"

# Replies to actions, as they came over the socket.
REGISTERED = "New server registered.\n\n"
DELETED = "Server deleted.\n"
DONE = "\n"
NO_SERVER = "No such server.\n\n"
NO_BACKEND = "No such backend.\n"
STILL_CONNECTED = "Server still has connections attached to it, cannot remove it.\n"
NOT_IN_MAINT = "Only servers in maintenance mode can be deleted.\n"
ALREADY = "Already exists a server with the same name in backend.\n\n"
UNKNOWN = (
    "Unknown command, but maybe one of the following ones is a better match:\n"
    "  add acl [@<ver>] <acl> <pattern>        : add an acl entry\n"
)

CHECK_FAILED = CommandResult(
    1,
    "",
    "[NOTICE]   (15341) : haproxy version is 2.6.12-1+deb12u4\n"
    "[NOTICE]   (15341) : path to executable is /usr/sbin/haproxy\n"
    "[ALERT]    (15341) : config : parsing [bad.cfg:9] : 'bind' : invalid port '99999'\n"
    "[ALERT]    (15341) : config : [bad.cfg:13] : 'server b/s1' : unknown keyword 'chek';"
    " did you mean 'check' maybe ?\n"
    "[ALERT]    (15341) : config : Error(s) found in configuration file : bad.cfg\n"
    "[ALERT]    (15341) : config : Fatal errors found in configuration.\n",
)
BIND_FAILED = CommandResult(
    1,
    "",
    "[NOTICE]   (15384) : haproxy version is 2.6.12-1+deb12u4\n"
    "[NOTICE]   (15384) : path to executable is /usr/sbin/haproxy\n"
    "[ALERT]    (15384) : Binding [/tmp/phx-exp/busy.cfg:9] for frontend f: cannot bind socket"
    " (Address already in use) for [127.0.0.1:18090]\n"
    "[ALERT]    (15384) : [haproxy.main()] Some protocols failed to start their listeners!"
    " Exiting.\n",
)


# --- the configuration ---------------------------------------------------------------------


def sections(text: str) -> dict[str, list[str]]:
    """'global', 'defaults', 'frontend NAME', 'backend NAME' -> their lines, stripped."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not raw.startswith(" "):
            current = found.setdefault(line, [])
        else:
            current.append(" ".join(line.split()))
    return found


def config(
    health: HealthCheck, servers: list[tuple[str, str]] | None = None
) -> dict[str, list[str]]:
    text = hconfig.config_text(
        "web",
        Path("/h/haproxy/web.sock"),
        Path("/h/haproxy/web.pid"),
        "127.0.0.1",
        8080,
        80,
        health,
        servers or [],
    )
    return sections(text)


def test_http_config() -> None:
    health = HealthCheck(type="http", port=80, path="/healthz")
    cfg = config(health, [("web-g1-1", "10.213.0.11"), ("web-g1-2", "10.213.0.12")])
    assert set(cfg) == {"global", "defaults", "frontend web-in", "backend web"}
    assert "stats socket /h/haproxy/web.sock mode 600 level admin" in cfg["global"]
    assert "pidfile /h/haproxy/web.pid" in cfg["global"]
    defaults = cfg["defaults"]
    for line in (
        "mode http",
        "timeout connect 2s",
        "timeout client 30s",
        "timeout server 30s",
        "retries 3",
        "option redispatch 1",
    ):
        assert line in defaults
    (retry_on,) = [line for line in defaults if line.startswith("retry-on ")]
    assert set(retry_on.split()[1:]) == {
        "conn-failure", "empty-response", "response-timeout", "500", "502", "503", "504"
    }  # fmt: skip
    assert cfg["frontend web-in"] == ["bind 127.0.0.1:8080", "default_backend web"]
    backend = cfg["backend web"]
    assert "balance roundrobin" in backend
    assert "option httpchk GET /healthz" in backend
    assert "http-check expect status 200-399" in backend
    assert "http-request disable-l7-retry unless METH_GET || METH_OPTIONS" in backend
    servers = [line.split() for line in backend if line.startswith("server ")]
    assert [words[1:3] for words in servers] == [
        ["web-g1-1", "10.213.0.11:80"],
        ["web-g1-2", "10.213.0.12:80"],
    ]
    for words in servers:
        assert words[3:] == hconfig.CHECK_OPTIONS.split()
        assert "weight" not in words  # static servers serve at once


def test_tcp_config_checks_on_its_own_port() -> None:
    cfg = config(HealthCheck(type="tcp", port=8081), [("web-g1-1", "10.213.0.11")])
    backend = cfg["backend web"]
    assert not [line for line in backend if "httpchk" in line or "http-check" in line]
    assert backend[-1] == f"server web-g1-1 10.213.0.11:80 {hconfig.CHECK_OPTIONS} port 8081"


def test_command_health_becomes_a_tcp_check_on_the_server_port() -> None:
    health = HealthCheck(type="command", port=8081, command="systemctl is-active nginx")
    backend = config(health, [("web-g1-1", "10.213.0.11")])["backend web"]
    assert not [line for line in backend if "httpchk" in line]
    assert backend[-1] == f"server web-g1-1 10.213.0.11:80 {hconfig.CHECK_OPTIONS}"


def test_no_servers_is_an_empty_backend() -> None:
    backend = config(HealthCheck())["backend web"]
    assert not [line for line in backend if line.startswith("server ")]


@pytest.mark.parametrize("path", ["/a b", "/a#b", '/"x"', "/$HOME", "/a\\b"])
def test_health_path_that_cannot_go_into_the_config(tmp_path: Path, path: str) -> None:
    health = HealthCheck(type="http", path=path)
    with pytest.raises(TrafficError, match="health check path"):
        HAProxy("web", tmp_path, "127.0.0.1", 8080, 80, health)


@pytest.mark.parametrize("fleet", ["web app", "web;show", "", "-web"])
def test_fleet_name_must_be_an_identifier(tmp_path: Path, fleet: str) -> None:
    with pytest.raises(TrafficError, match="not a valid HAProxy identifier"):
        HAProxy(fleet, tmp_path, "127.0.0.1", 8080, 80, HealthCheck())


def test_home_that_cannot_go_into_the_config(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match="cannot go into an HAProxy configuration"):
        HAProxy("web", tmp_path / "my home", "127.0.0.1", 8080, 80, HealthCheck())


def test_socket_path_too_long(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match="longer than 107 bytes"):
        HAProxy("web", tmp_path / ("x" * 100), "127.0.0.1", 8080, 80, HealthCheck())


def test_endpoint(tmp_path: Path) -> None:
    assert HAProxy("web", tmp_path, "127.0.0.1", 8080, 80, HealthCheck()).endpoint == (
        "127.0.0.1:8080"
    )


# --- the parsers ---------------------------------------------------------------------------


def test_servers_state_columns_come_from_the_header() -> None:
    rows = runtime.parse_servers_state(STATE_LATER)
    assert [row["srv_name"] for row in rows] == ["web-g1-1", "web-g2-1", "web-g2-2"]
    assert rows[0]["srv_op_state"] == "2" and rows[0]["srv_admin_state"] == "8"
    assert rows[2]["srv_addr"] == "127.0.0.4" and rows[2]["srv_port"] == "18001"
    # HAProxy 2.6: op_state is the 6th column (after be_id be_name srv_id srv_name srv_addr).
    assert STATE_HEADER.splitlines()[1].split()[6] == "srv_op_state"  # [0] is the '#'


def test_empty_backend() -> None:
    assert runtime.parse_servers_state(STATE_EMPTY) == []
    assert runtime.parse_stat(STAT_EMPTY) == []
    assert runtime.backends([], []) == []


@pytest.mark.parametrize("text", ["No such backend.\n", "Can't find backend.\n\n", ""])
def test_servers_state_refusal_is_not_parsed(text: str) -> None:
    with pytest.raises(TrafficError, match="unexpected `show servers state` output"):
        runtime.parse_servers_state(text)


def test_stat_rows_by_header() -> None:
    rows = runtime.parse_stat(STAT_LATER)
    assert [(row["pxname"], row["svname"], row["scur"]) for row in rows] == [
        ("web", "web-g1-1", "0"),
        ("web", "web-g2-1", "0"),
        ("web", "web-g2-2", "0"),
    ]
    assert rows[2]["check_status"] == "L4CON"
    assert rows[2]["last_chk"] == "Connection refused"
    assert runtime.parse_stat(STAT_BUSY)[0]["scur"] == "1"
    with pytest.raises(TrafficError, match="unexpected `show stat` output"):
        runtime.parse_stat("No such proxy.\n")


def joined(state: str, stat: str) -> dict[str, Backend]:
    rows = runtime.backends(runtime.parse_servers_state(state), runtime.parse_stat(stat))
    return {backend.name: backend for backend in rows}


def test_backends_later() -> None:
    servers = joined(STATE_LATER, STAT_LATER)
    drained, fresh, dead = servers["web-g1-1"], servers["web-g2-1"], servers["web-g2-2"]
    assert drained == Backend(
        name="web-g1-1",
        address="127.0.0.2",
        port=18001,
        op_state=2,
        admin_state=8,
        sessions=0,
        weight=1,
        check_result=3,
        check_status="L7OK",
    )
    assert drained.draining and not drained.healthy
    assert drained.describe() == "up (drain), last check L7OK"
    assert fresh.healthy and fresh.weight == 0
    assert not dead.healthy and dead.op_state == runtime.OP_STOPPED
    assert dead.describe() == "down, last check L4CON: Connection refused"


def test_just_added_servers_are_in_maintenance_without_weight() -> None:
    servers = joined(STATE_ADDED, STAT_EMPTY)
    assert servers["web-g1-1"].healthy and servers["web-g1-1"].sessions == 0
    for name in ("web-g2-1", "web-g2-2"):
        assert servers[name].in_maintenance and servers[name].weight == 0
        assert servers[name].describe() == "down (maint)"


def test_enabled_servers_are_up_before_any_check() -> None:
    """Why `add` gives weight 0 and `wait_up` also waits for a passed check."""
    servers = joined(STATE_ENABLED, STAT_EMPTY)
    for name in ("web-g2-1", "web-g2-2"):
        assert servers[name].healthy and servers[name].check_result == runtime.CHECK_UNKNOWN
        assert servers[name].weight == 0


def test_maintenance_with_a_request_in_flight() -> None:
    server = joined(STATE_MAINT_ONE, STAT_BUSY)["web-g1-1"]
    assert server.in_maintenance and server.sessions == 1 and not server.healthy


# --- replies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("add server web/a 127.0.0.2:80 check", REGISTERED),
        ("enable server web/a", DONE),
        ("set server web/a state drain", DONE),
        ("del server web/a", DELETED),
        ("show servers state web", STATE_LATER),
        ("show stat web 4 -1", STAT_LATER),
        ("show version", "2.6.12-1+deb12u4\n\n"),
    ],
)
def test_success_replies(command: str, reply: str) -> None:
    assert runtime.reply_error(command, reply) is None


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("set server web/zzz state drain", NO_SERVER),
        ("add server nope/x 127.0.0.1:1", NO_BACKEND),
        ("add server web/a 127.0.0.2:80 check", ALREADY),
        ("add server web/y 127.0.0.2:80 bogus", "unknown keyword 'bogus'.\n\n"),
        ("del server web/a", NOT_IN_MAINT),
        ("del server web/a", STILL_CONNECTED),
        ("set server web/y state bogus", "'set server <srv> state' expects 'ready', 'drain'\n"),
        ("enable server web", "Require 'backend/server'.\n"),
        ("bogus", UNKNOWN),
        ("show servers state nope", "Can't find backend.\n\n"),
        ("show stat", "Permission denied\n"),
        ("show version", UNKNOWN),
        ("enable server web/a", ""),  # an action succeeds with an empty line, not with nothing
    ],
)
def test_error_replies(command: str, reply: str) -> None:
    error = runtime.reply_error(command, reply)
    assert error is not None
    assert error == (reply.strip() or "(no reply)")


def test_alerts_are_what_haproxy_complained_about() -> None:
    assert haproxy._alerts(CHECK_FAILED) == (
        "config : parsing [bad.cfg:9] : 'bind' : invalid port '99999'"
        " / config : [bad.cfg:13] : 'server b/s1' : unknown keyword 'chek';"
        " did you mean 'check' maybe ?"
        " / config : Error(s) found in configuration file : bad.cfg"
        " / config : Fatal errors found in configuration."
    )
    assert "cannot bind socket (Address already in use)" in haproxy._alerts(BIND_FAILED)
    assert haproxy._alerts(CommandResult(1, "", "")) == "exit 1"


# --- commands over a fake admin socket -----------------------------------------------------

Replies = dict[str, list[str]]


class FakeAdmin:
    """A unix socket answering one command per connection from scripted replies.

    Each command's replies are used in order; the last one repeats. Unscripted commands get
    "Unknown command".
    """

    def __init__(self, path: Path, replies: Replies) -> None:
        self.replies = replies
        self.commands: list[str] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                command = data.decode().strip()
                self.commands.append(command)
                scripted = self.replies.get(command, [UNKNOWN])
                reply = scripted.pop(0) if len(scripted) > 1 else scripted[0]
                conn.sendall(reply.encode())

    def actions(self) -> list[str]:
        return [command for command in self.commands if not command.startswith("show ")]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)


ADD_G2_1 = "add server web/web-g2-1 127.0.0.3:18001 check inter 500 rise 1 fall 2 weight 0"


def shows(state: str | list[str], stat: str | list[str]) -> Replies:
    """Replies to `servers()`: one `show servers state` and one `show stat` per call."""
    return {
        "show servers state web": state if isinstance(state, list) else [state],
        "show stat web 4 -1": stat if isinstance(stat, list) else [stat],
    }


Start = Callable[[Replies], tuple[HAProxy, FakeAdmin]]


@pytest.fixture
def start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Start]:
    """An HAProxy of fleet "web" (servers on port 18001) talking to a FakeAdmin."""
    fakes: list[FakeAdmin] = []

    def make(replies: Replies) -> tuple[HAProxy, FakeAdmin]:
        home = tmp_path_factory.mktemp("t")
        lb = HAProxy("web", home, "127.0.0.1", 8080, 18001, HealthCheck(port=18001))
        fakes.append(FakeAdmin(lb.socket_path, replies))
        return lb, fakes[-1]

    yield make
    for one in fakes:
        one.close()


def test_add_new_server_without_weight(start: Start) -> None:
    lb, admin = start(
        shows(STATE_EMPTY, STAT_EMPTY)
        | {ADD_G2_1: [REGISTERED], "enable health web/web-g2-1": [DONE]}
        | {"enable server web/web-g2-1": [DONE]}
    )
    lb.add("web-g2-1", "127.0.0.3")
    assert admin.actions() == [ADD_G2_1, "enable health web/web-g2-1", "enable server web/web-g2-1"]


def test_add_is_idempotent(start: Start) -> None:
    lb, admin = start(shows(STATE_LATER, STAT_LATER))
    lb.add("web-g2-1", "127.0.0.3")  # there and not in maintenance: nothing to do
    assert admin.actions() == []


def test_add_again_takes_it_out_of_maintenance_without_weight(start: Start) -> None:
    lb, admin = start(
        shows(STATE_ADDED, STAT_EMPTY)
        | {f"{verb} web/web-g2-1": [DONE] for verb in ("set server", "enable health")}
        | {
            "set server web/web-g2-1 weight 0": [DONE],
            "set server web/web-g2-1 state ready": [DONE],
        }
    )
    lb.add("web-g2-1", "127.0.0.3")
    assert admin.actions() == [
        "set server web/web-g2-1 weight 0",
        "enable health web/web-g2-1",
        "set server web/web-g2-1 state ready",
    ]


def test_add_again_stops_a_drain(start: Start) -> None:
    lb, admin = start(
        shows(STATE_LATER, STAT_LATER) | {"set server web/web-g1-1 state ready": [DONE]}
    )
    lb.add("web-g1-1", "127.0.0.2")
    assert admin.actions() == ["set server web/web-g1-1 state ready"]


def test_add_same_name_other_address_is_refused(start: Start) -> None:
    lb, admin = start(shows(STATE_LATER, STAT_LATER))
    with pytest.raises(TrafficError, match=r"already has a server web-g2-1 at 127\.0\.0\.3:18001"):
        lb.add("web-g2-1", "127.0.0.9")
    assert admin.actions() == []


def test_refusal_names_command_and_reply(start: Start) -> None:
    lb, _ = start(shows(STATE_EMPTY, STAT_EMPTY) | {ADD_G2_1: [ALREADY]})
    with pytest.raises(TrafficError) as caught:
        lb.add("web-g2-1", "127.0.0.3")
    assert caught.value.message == (
        f"HAProxy of fleet web refused `{ADD_G2_1}`:"
        " Already exists a server with the same name in backend."
    )


@pytest.mark.parametrize(
    ("name", "address"),
    [("web;show", "127.0.0.2"), ("web g", "127.0.0.2"), ("web-1", "127.0.0.2;x"), ("w", "::1")],
)
def test_bad_names_and_addresses_never_reach_haproxy(start: Start, name: str, address: str) -> None:
    lb, admin = start({})
    with pytest.raises(TrafficError):
        lb.add(name, address)
    assert admin.commands == []


def test_wait_up_waits_for_a_passed_check_then_gives_weight(start: Start) -> None:
    lb, admin = start(
        shows([STATE_ADDED, STATE_ENABLED, STATE_LATER], STAT_LATER)
        | {"set server web/web-g2-1 weight 1": [DONE]}
    )
    lb.wait_up("web-g2-1", timeout=5)
    assert admin.commands.count("show servers state web") == 3
    assert admin.actions() == ["set server web/web-g2-1 weight 1"]


def test_wait_up_timeout_says_why(start: Start) -> None:
    lb, admin = start(shows(STATE_LATER, STAT_LATER))
    with pytest.raises(TrafficError) as caught:
        lb.wait_up("web-g2-2", timeout=0.2)
    assert caught.value.message == (
        "web-g2-2 (127.0.0.4:18001) did not come up behind the load balancer of fleet web"
        " within 0.2 s: down, last check L4CON: Connection refused"
    )
    assert admin.actions() == []


def test_wait_up_of_an_unknown_server(start: Start) -> None:
    lb, _ = start(shows(STATE_EMPTY, STAT_EMPTY))
    with pytest.raises(TrafficError, match="has no server web-g2-1"):
        lb.wait_up("web-g2-1", timeout=5)


def test_wait_drained(start: Start) -> None:
    lb, _ = start(shows(STATE_MAINT_ONE, [STAT_BUSY, STAT_BUSY, STAT_IDLE]))
    assert lb.wait_drained("web-g1-1", timeout=0.01) is False
    assert lb.wait_drained("web-g1-1", timeout=5) is True
    assert lb.wait_drained("web-g9-9", timeout=5) is True  # gone is drained


def test_remove_absent_is_a_no_op(start: Start) -> None:
    lb, admin = start(shows(STATE_LATER, STAT_LATER))
    lb.remove("web-g9-9")
    assert admin.actions() == []


def test_remove_waits_for_connections(start: Start) -> None:
    lb, admin = start(
        shows(STATE_MAINT_ONE, [STAT_BUSY, STAT_BUSY, STAT_IDLE])
        | {"set server web/web-g1-1 state maint": [DONE]}
        | {"set server web/web-g1-1 state drain": [DONE]}
        | {"del server web/web-g1-1": [STILL_CONNECTED, STILL_CONNECTED, DELETED]}
    )
    lb.remove("web-g1-1")
    assert admin.actions() == [
        "set server web/web-g1-1 state maint",
        "del server web/web-g1-1",  # a request runs (scur 1): wait
        "del server web/web-g1-1",  # none runs, an idle connection stays: maint again
        "set server web/web-g1-1 state drain",
        "set server web/web-g1-1 state maint",
        "del server web/web-g1-1",
    ]


def test_remove_gives_up_at_its_deadline(start: Start) -> None:
    lb, _ = start(
        shows(STATE_MAINT_ONE, STAT_BUSY)
        | {"set server web/web-g1-1 state maint": [DONE]}
        | {"del server web/web-g1-1": [STILL_CONNECTED]}
    )
    with pytest.raises(TrafficError, match="Server still has connections"):
        lb.remove("web-g1-1", timeout=0.2)


def test_remove_refused(start: Start) -> None:
    lb, _ = start(
        shows(STATE_LATER, STAT_LATER)
        | {"set server web/web-g1-1 state maint": [DONE]}
        | {"del server web/web-g1-1": [NOT_IN_MAINT]}
    )
    with pytest.raises(TrafficError, match="refused `del server web/web-g1-1`: Only servers in"):
        lb.remove("web-g1-1")


def test_drain_of_an_unknown_server(start: Start) -> None:
    lb, _ = start({"set server web/web-g9-9 state drain": [NO_SERVER]})
    with pytest.raises(
        TrafficError, match=r"`set server web/web-g9-9 state drain`: No such server"
    ):
        lb.drain("web-g9-9")


def test_no_haproxy_is_not_running_and_commands_fail(tmp_path: Path) -> None:
    lb = HAProxy("web", tmp_path, "127.0.0.1", 8080, 80, HealthCheck())
    assert not lb.running()
    with pytest.raises(TrafficError, match="did not answer `show servers state web`"):
        lb.servers()


# --- traffic counters ----------------------------------------------------------------------


def stat_line(pxname: str, svname: str, **fields: str) -> str:
    """A `show stat` CSV line under STAT_HEADER: the named columns set, every other one empty."""
    columns = STAT_HEADER.removeprefix("# ").rstrip("\n").split(",")
    values = {"pxname": pxname, "svname": svname, **fields}
    assert set(values) <= set(columns)
    return ",".join(values.get(column, "") for column in columns) + "\n"


# The frontend, backend and two servers after some traffic: web-g2-1 answers 500 to a third.
STAT_TRAFFIC = STAT_HEADER + (
    stat_line("web-in", "FRONTEND", hrsp_2xx="140", hrsp_5xx="10", status="OPEN")
    + stat_line("web", "web-g1-1", hrsp_2xx="100", hrsp_4xx="2", econ="0", eresp="0", wretr="0")
    + stat_line(
        "web",
        "web-g2-1",
        hrsp_1xx="0",
        hrsp_2xx="20",
        hrsp_3xx="1",
        hrsp_5xx="10",
        hrsp_other="0",
        econ="3",
        eresp="1",
        wretr="2",
        wredis="1",
        rtime="250",
        status="UP",
    )
    + stat_line("web", "BACKEND", hrsp_2xx="120", hrsp_5xx="10", econ="3", status="UP")
    + "\n"
)


def test_counters_of_the_servers_only() -> None:
    found = runtime.counters(runtime.parse_stat(STAT_TRAFFIC))
    assert set(found) == {"web-g1-1", "web-g2-1"}
    assert found["web-g1-1"] == runtime.Counters(responses={"2xx": 100, "4xx": 2})
    assert found["web-g1-1"].responses == {
        "1xx": 0,
        "2xx": 100,
        "3xx": 0,
        "4xx": 2,
        "5xx": 0,
        "other": 0,
    }
    assert found["web-g1-1"].total == 102
    fresh = found["web-g2-1"]
    assert (fresh.total, fresh.responded("5xx"), fresh.responded("3xx")) == (31, 10, 1)
    assert (fresh.conn_errors, fresh.resp_errors, fresh.retries, fresh.redispatches) == (3, 1, 2, 1)
    assert fresh.rtime_ms == 250


def test_counters_of_recorded_output() -> None:
    """HAProxy 2.6.12's own dump: a server without traffic has zeros and empty fields."""
    found = runtime.counters(runtime.parse_stat(STAT_LATER))
    assert set(found) == {"web-g1-1", "web-g2-1", "web-g2-2"}
    assert all(counts == runtime.Counters() and counts.total == 0 for counts in found.values())
    assert runtime.counters(runtime.parse_stat(STAT_EMPTY)) == {}


def test_a_counter_that_is_not_a_number() -> None:
    text = STAT_HEADER + stat_line("web", "web-g1-1", hrsp_5xx="lots")
    with pytest.raises(TrafficError) as caught:
        runtime.counters(runtime.parse_stat(text))
    assert caught.value.message == (
        "HAProxy's `show stat` gave hrsp_5xx = 'lots' for server web-g1-1, not a count"
    )
    with pytest.raises(TrafficError, match="econ = '-1'"):
        runtime.counters(runtime.parse_stat(STAT_HEADER + stat_line("web", "a", econ="-1")))


def test_counters_reject_an_unknown_response_class() -> None:
    with pytest.raises(ValueError, match="not response classes"):
        runtime.Counters(responses={"6xx": 1})


def test_balancer_counters(start: Start) -> None:
    lb, admin = start(shows(STATE_LATER, STAT_TRAFFIC))
    found = lb.counters()
    assert sorted(found) == ["web-g1-1", "web-g2-1"]
    assert found["web-g2-1"].responded("5xx") == 10
    assert admin.commands == ["show stat web 4 -1"]
