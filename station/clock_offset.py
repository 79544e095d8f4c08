"""How far the station's wall clock is from a reference, so evidence timestamps line up with CCTV.

Two references, tried in this order (`reference = "auto"`):

- chrony (`chronyc -c tracking`), when the station runs chronyd: its estimate of the system clock's
  offset from NTP time ("System time"), with an error bound of root delay / 2 + root dispersion.
  Precise (micro- to milliseconds), but only as good as chrony's own NTP sources.
- The HTTP `Date` header of a server the station already talks to (by default the manifest
  source's host): offset = local midpoint of the request - (Date + 0.5 s). `Date` has one-second
  resolution and the server's clock is taken as truth, so the error bound is 0.5 s + half the
  round trip. Coarse, but it catches what matters for CCTV: a clock minutes off, a wrong zone.

`offset_s` is station minus reference: positive means the station's clock is ahead. The station
raises the fault "clock offset" only when the offset is beyond `max_offset_s` even at the edge of
its error bound (|offset| - uncertainty > max_offset_s), so the coarse HTTP reference never cries
wolf; it clears once a measurement is back within the bound.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

_CHRONY_TIMEOUT_S = 3.0
_HTTP_TIMEOUT_S = 5.0
# `chronyc -c tracking` fields (CSV): 0 reference id, 1 reference name, 2 stratum, 3 reference
# time, 4 system time offset (seconds; positive: the system clock is slow), 5 last offset,
# 6 RMS offset, 7 frequency, 8 residual frequency, 9 skew, 10 root delay, 11 root dispersion,
# 12 update interval, 13 leap status.
_CHRONY_FIELDS = 14


class ClockCheckConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Literal["auto", "chrony", "http", "off"] = Field(
        default="auto",
        description="What the wall clock is compared with: chrony's NTP estimate, the HTTP Date "
        "header of `http_url`, auto (chrony if installed, else HTTP) or off.",
    )
    http_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Server whose HTTP Date header is the reference; default: the manifest "
        "source's host when manifests come over HTTP.",
    )
    max_offset_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="Beyond this (after allowing for the measurement's error) the station "
        "raises the 'clock offset' fault: its timestamps would not line up with CCTV.",
    )
    interval_s: float = Field(
        default=300.0, ge=5, le=86_400, description="How often the offset is measured."
    )


@dataclass(frozen=True, slots=True)
class ClockOffset:
    offset_s: float  # station minus reference; positive: the station is ahead
    uncertainty_s: float  # the true offset lies within offset_s ± uncertainty_s
    source: str  # e.g. "chrony (ntp1.example)", "http wms.example:443"
    measured_at: datetime

    def beyond(self, bound_s: float) -> bool:
        """Certainly further off than `bound_s`, whatever the measurement's error."""
        return abs(self.offset_s) - self.uncertainty_s > bound_s


class ClockReadError(RuntimeError):
    pass


def parse_chrony_tracking(line: str, measured_at: datetime) -> ClockOffset:
    """One line of `chronyc -c tracking`; ClockReadError if it is not one."""
    fields = line.strip().split(",")
    if len(fields) != _CHRONY_FIELDS:
        raise ClockReadError(f"chronyc tracking gave {len(fields)} fields, expected 14")
    try:
        slow_by, root_delay, root_dispersion = (float(fields[i]) for i in (4, 10, 11))
    except ValueError as exc:
        raise ClockReadError(f"chronyc tracking gave a non-number: {exc}") from None
    if fields[13].strip().lower() == "not synchronised":
        raise ClockReadError("chrony is not synchronised to any NTP source")
    values = (slow_by, root_delay, root_dispersion)
    if not all(abs(v) < 1e9 for v in values) or root_delay < 0 or root_dispersion < 0:
        raise ClockReadError("chronyc tracking gave an impossible offset or error")
    name = fields[1].strip() or fields[0].strip()
    return ClockOffset(-slow_by, root_delay / 2 + root_dispersion, f"chrony ({name})", measured_at)


def chrony_offset(now: Callable[[], datetime]) -> ClockOffset:
    chronyc = shutil.which("chronyc")
    if chronyc is None:
        raise ClockReadError("chronyc is not installed")
    try:
        done = subprocess.run(
            [chronyc, "-c", "tracking"], capture_output=True, text=True, timeout=_CHRONY_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClockReadError(f"chronyc tracking failed: {exc}") from None
    if done.returncode != 0:
        raise ClockReadError(f"chronyc tracking failed: {done.stderr.strip() or done.returncode}")
    return parse_chrony_tracking(done.stdout, now())


def parse_http_date(value: str) -> float:
    """An HTTP Date header (IMF-fixdate or the obsolete forms) as POSIX seconds."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError) as exc:
        raise ClockReadError(f"unreadable HTTP Date header {value!r}: {exc}") from None
    if parsed.tzinfo is None:  # "-0000": RFC 5322 says UTC with unknown source zone
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def http_date_offset(url: str, wall: Callable[[], float] = time.time) -> ClockOffset:
    """Offset from one HEAD request's Date header (any status: a 404 still carries a Date)."""
    request = urllib.request.Request(url, method="HEAD")
    sent = wall()
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            date = response.headers.get("Date")
    except urllib.error.HTTPError as error:
        date = error.headers.get("Date")
    except (OSError, ValueError) as exc:
        raise ClockReadError(f"cannot reach {url} for its Date header: {exc}") from None
    received = wall()
    if not date:
        raise ClockReadError(f"{url} sent no Date header")
    server = parse_http_date(date) + 0.5  # Date is truncated to the second
    midpoint = (sent + received) / 2
    host = urlsplit(url).netloc
    return ClockOffset(
        midpoint - server,
        0.5 + (received - sent) / 2,
        f"http {host}",
        datetime.fromtimestamp(received, UTC),
    )


def http_reference(url_template: str) -> str:
    """The root of the host a URL template points at (where the Date header comes from),
    without any user:password@ in it: the Date comes without them (a 401 carries one too), and
    the URL is shown in logs, status and fault events."""
    parts = urlsplit(url_template)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}/"


class ClockMonitor:
    """Measures the offset on demand (blocking: call it on a thread)."""

    def __init__(self, config: ClockCheckConfig, default_http_url: str | None) -> None:
        self.config = config
        self._http_url = config.http_url or default_http_url

    @property
    def enabled(self) -> bool:
        return self.config.reference != "off"

    def measure(self) -> ClockOffset:
        """The offset from the configured reference; ClockReadError naming every failure."""
        reference = self.config.reference
        problems = []
        if reference in ("auto", "chrony"):
            try:
                return chrony_offset(lambda: datetime.now(UTC))
            except ClockReadError as exc:
                problems.append(str(exc))
        if reference in ("auto", "http"):
            if self._http_url is None:
                problems.append("no HTTP reference: set [clock] http_url")
            else:
                try:
                    return http_date_offset(self._http_url)
                except ClockReadError as exc:
                    problems.append(str(exc))
        raise ClockReadError("; ".join(problems) or "clock checking is off")
