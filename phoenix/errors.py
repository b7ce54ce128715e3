"""One flat tree of errors, each message written for the operator.

Every error phoenix raises on purpose is a `PhoenixError`. The CLI catches it once, prints
`message` (and `hint`, what to do about it) and exits with `exit_code`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What cron and CI can act on."""

    OK = 0
    FAILED = 1  # the work ran and did not succeed (rolled back, drift found, doctor found gaps)
    REFUSED = 2  # nothing was done: bad input, bad config, a lock held by another run
    INTERNAL = 70  # a bug in phoenix (EX_SOFTWARE): the traceback is in a crash log
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM (128 + SIGTERM): stopped from outside, cleaned up like Ctrl-C


class PhoenixError(Exception):
    """Base of every error phoenix raises for the operator."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(PhoenixError):
    """phoenix.toml is missing, unreadable or invalid (a problem in the file itself)."""

    exit_code = ExitCode.REFUSED


class NotFound(PhoenixError):
    """A fleet, image, tag, server or template the operator named does not exist."""

    exit_code = ExitCode.REFUSED


class StateError(PhoenixError):
    """The state store cannot be opened or migrated."""


class LockHeld(PhoenixError):
    """Another phoenix process holds the lock of a fleet."""

    exit_code = ExitCode.REFUSED


class MissingPackages(PhoenixError):
    """Host packages that phoenix needs are not installed."""

    exit_code = ExitCode.REFUSED


class LabError(PhoenixError):
    """The local LXD lab could not be brought to the wanted state."""


class LXDError(PhoenixError):
    """The LXD daemon refused or failed a request."""


class ConnectError(PhoenixError):
    """A server could not be reached over SSH."""


class CommandTimeout(ConnectError):
    """A command on a server did not finish within its deadline (it hung, or the server stopped
    answering, or kept it running on purpose)."""


class HostKeyError(PhoenixError):
    """A server presented a host key other than the one phoenix pinned."""


class UntrustedOutput(PhoenixError):
    """What a server sent back is not what phoenix's own commands write: forged, cut or garbled.

    The server cannot be read, and may be compromised: its drift scan marks it untrusted."""


class OutputTooLarge(UntrustedOutput):
    """A command on a server wrote more than phoenix reads of any command ([drift] max_output)."""


class CommandError(PhoenixError):
    """A command on the host or on a server failed."""


class DeadlineExceeded(CommandError):
    """An external call (Terraform, Packer, LXD, a host command) outlived its deadline: phoenix
    stopped it, and its process group, and gave up on the work it was doing."""


class CanaryFailed(PhoenixError):
    """New servers did worse on live traffic than the old ones (or than the absolute limits)
    in their observation window: they leave the traffic at once and the rollout is rolled back.
    `verdict` holds the numbers that failed them (phoenix.fleet.canary.Verdict.as_dict())."""

    def __init__(self, message: str, verdict: dict[str, object], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.verdict = verdict


class BakeError(PhoenixError):
    """An image could not be baked, or failed its smoke boot."""


class HealthError(PhoenixError):
    """A server did not pass its health check in time."""


class Refused(PhoenixError):
    """A request phoenix will not carry out as asked (nothing was changed)."""

    exit_code = ExitCode.REFUSED


class TerraformError(PhoenixError):
    """Terraform failed to plan or apply a fleet's servers."""


class TrafficError(PhoenixError):
    """The load balancer refused or failed a change."""


class CloudError(PhoenixError):
    """A cloud's API (AWS) refused or failed a request, or what phoenix waited for there did not
    come within its deadline."""


class ReportError(PhoenixError):
    """A report or metrics file could not be written."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise KeyboardInterrupt, so that it unwinds the same way
    (the rollout settles and records the run as interrupted, children stop, locks are released).
    Not a PhoenixError: like Ctrl-C, it is no error of the work."""
