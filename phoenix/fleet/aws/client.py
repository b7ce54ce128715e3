"""botocore clients with deadlines, and AWS's errors as one line for the operator.

botocore is imported here only inside functions: the CLI imports phoenix.ops (and so this
package) at start-up of fleet commands, and a lab fleet never needs it. Credentials are never
phoenix's: botocore reads them from the environment (AWS_PROFILE, AWS_ACCESS_KEY_ID..., an
instance role), and Terraform's AWS provider does the same.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from phoenix.errors import MissingPackages, PhoenixError

CONNECT_TIMEOUT = 5.0  # seconds to open a connection to an AWS endpoint
READ_TIMEOUT = 15.0  # seconds to wait for an answer once connected
MAX_ATTEMPTS = 3  # botocore's standard retries (throttling, 5xx), backoff included
MESSAGE_MAX = 300  # AWS's message as quoted in phoenix's error (first line only)

THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
CREDENTIALS = frozenset(
    {"AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken"}
)

E = TypeVar("E", bound=PhoenixError)
T = TypeVar("T")


def make_client(service: str, region: str) -> Any:
    """A botocore client of `service` ("ec2", "elbv2") in `region`, every call bounded by
    CONNECT_TIMEOUT and READ_TIMEOUT and retried at most MAX_ATTEMPTS times."""
    try:
        import botocore.session
        from botocore.config import Config
    except ImportError as exc:
        raise MissingPackages(
            'botocore is not installed: a fleet with cloud = "aws" needs it',
            hint="install phoenix with its aws extra: pip install 'phoenix[aws]'",
        ) from exc

    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
    )
    return _session(botocore.session).create_client(service, region_name=region, config=config)


@functools.cache
def _session(module: Any) -> Any:
    """One botocore session per process: its loader reads each service's model once."""
    return module.get_session()


def call(error: type[E], what: str, request: Callable[[], T], permission: str = "") -> T:
    """Run one AWS request; its failure as `error`: what failed, AWS's words, what to do.

    `what` says what phoenix was doing ("register web-g2-1 in target group web"); `permission`
    is the IAM action the request needs, named in the hint when AWS denies it."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return request()
    except ClientError as exc:
        code, message = client_error(exc)
        raise error(
            f"AWS refused to {what}: {code}: {message}", hint=_hint(code, permission)
        ) from exc
    except NoCredentialsError as exc:
        raise error(
            f"could not {what}: no AWS credentials",
            hint="set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) for phoenix",
        ) from exc
    except BotoCoreError as exc:  # connection refused, timeouts, endpoint not resolved...
        raise error(
            f"could not {what}: {_one_line(str(exc))}",
            hint="check the network path to AWS and the region, then run phoenix again",
        ) from exc


def client_error(exc: Any) -> tuple[str, str]:
    """The code and first line of the message of a botocore ClientError."""
    detail = getattr(exc, "response", {}).get("Error", {})
    return str(detail.get("Code") or "Unknown"), _one_line(str(detail.get("Message") or ""))


def _hint(code: str, permission: str) -> str:
    if code in THROTTLED:
        return "AWS is throttling this account's API calls: run phoenix again in a minute"
    if code in DENIED:
        needed = f" {permission}" if permission else " the action"
        return f"grant phoenix's AWS identity the IAM permission{needed}"
    if code in CREDENTIALS:
        return "the AWS credentials phoenix runs with are invalid or expired: renew them"
    return "see AWS's message; phoenix changed nothing further"


def _one_line(text: str) -> str:
    first = (text.strip().splitlines() or [""])[0]
    cleaned = "".join(c if c.isprintable() else "?" for c in first)
    return cleaned if len(cleaned) <= MESSAGE_MAX else cleaned[:MESSAGE_MAX] + "..."
