"""The sd_notify protocol, spoken directly: one AF_UNIX datagram per message to $NOTIFY_SOCKET.

systemd's `Type=notify` waits for READY=1, shows STATUS= in `systemctl status`, restarts the
service when WATCHDOG=1 pings stop, and knows a stop or reload is under way from STOPPING=1 and
RELOADING=1. The protocol is a few lines of text in a datagram, so a library would be more code
to trust than this module. Outside systemd (no $NOTIFY_SOCKET) every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

_log = logging.getLogger(__name__)

# systemd reads at most a pipe buffer per datagram; a status line is for humans, keep it short.
_MAX_STATUS_CHARS = 1024


class Notifier:
    """Sends service-manager notifications for one process; a no-op outside systemd.

    Build it with `from_environment()` once at startup. `NotifyAccess=main` in the unit means
    only the main process is listened to, so call it from the agent process, not a child.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self._watchdog_interval = watchdog_usec / 2_000_000 if watchdog_usec else None
        self._last_ping: float | None = None
        self._warned = False

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, pid: int | None = None
    ) -> Notifier:
        """Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID the way sd_notify(3) does."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and not address.startswith(("/", "@")):
            _log.warning("NOTIFY_SOCKET=%r is not a unix socket path; not notifying", address)
            address = None
        return cls(address, _watchdog_usec(env, os.getpid() if pid is None else pid))

    @property
    def enabled(self) -> bool:
        """True when a service manager is listening."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None: no watchdog."""
        return self._watchdog_interval

    def send(self, *assignments: str) -> bool:
        """Send `KEY=VALUE` assignments in one datagram; False when not delivered."""
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError as exc:
            # The agent's job is shipping logs; a missing manager must never stop it.
            level = logging.DEBUG if self._warned else logging.WARNING
            _log.log(level, "cannot notify the service manager: %s", exc)
            self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup is done (inputs are watched): `systemctl start` returns now."""
        return self.send("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """A one-line summary shown by `systemctl status`."""
        return self.send(*_status(text))

    def reloading(self) -> bool:
        """A SIGHUP reload started; send `ready()` when the new config is in effect."""
        # MONOTONIC_USEC is required by Type=notify-reload (systemd >= 253), ignored before.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown started: draining and committing offsets."""
        return self.send("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        """Tell the manager the main loop is alive."""
        return self.send("WATCHDOG=1")

    def ping_if_due(self, now: float) -> bool:
        """Ping the watchdog when half the interval has passed; call from the main loop only.

        A ping from a helper thread would keep a hung main loop alive, which defeats the
        watchdog. `now` is `time.monotonic()`. Returns True when a ping was sent.
        """
        interval = self._watchdog_interval
        if interval is None or (self._last_ping is not None and now - self._last_ping < interval):
            return False
        self._last_ping = now
        return self.watchdog()


def _socket_address(address: str) -> str:
    """'@name' is Linux's abstract namespace: a leading NUL byte on the wire."""
    return "\0" + address[1:] if address.startswith("@") else address


def _watchdog_usec(env: Mapping[str, str], pid: int) -> int | None:
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner != str(pid):
        return None  # the watchdog belongs to another process (our parent, say)
    try:
        usec = int(raw)
    except ValueError:
        _log.warning("WATCHDOG_USEC=%r is not a number; not pinging the watchdog", raw)
        return None
    return usec if usec > 0 else None


def _status(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    # A newline would start a new assignment: a file name must not be able to send READY=1.
    line = " ".join(text.split())
    return (f"STATUS={line[:_MAX_STATUS_CHARS]}",)
