"""Reviewer PINs: salted scrypt hashes in the config, checked with a per-station attempt limit.

A PIN is short, so the hash must be slow (scrypt, 16 MiB, ~50 ms) and the attempts few: the
limiter counts every wrong entry at this station, whatever badge was typed, so cycling badges does
not buy an attacker more guesses.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import secrets
import sys
from collections import deque
from collections.abc import Iterable
from datetime import datetime

_SCHEME = "scrypt"
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MIN_PIN_DIGITS = 4


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$hash` with base64 salt and hash; a fresh random salt by default."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    key = _derive(pin, salt, _N, _R, _P)
    return "$".join([_SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(key)])


def verify_pin(pin: str, pin_hash: str) -> bool:
    """True when `pin` matches; constant-time comparison. Slow on purpose: call off the loop."""
    scheme, n, r, p, salt, key = pin_hash.split("$")
    if scheme != _SCHEME:
        return False
    derived = _derive(pin, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(derived, base64.b64decode(key))


def is_pin_hash(value: str) -> bool:
    parts = value.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME or not all(p.isdigit() for p in parts[1:4]):
        return False
    try:
        return len(base64.b64decode(parts[5], validate=True)) == _KEY_BYTES
    except ValueError:
        return False


def _derive(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=_KEY_BYTES
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class AttemptLimiter:
    """At most `limit` failures within `window_s`; older failures are forgotten."""

    def __init__(self, limit: int, window_s: float) -> None:
        self._limit = limit
        self._window_s = window_s
        self._failures: deque[float] = deque()

    def recall(self, failed_at_utc: Iterable[datetime], now_utc: datetime, now: float) -> None:
        """Count failures from before a restart (their UTC times, from the audit trail) on the
        monotonic clock: a restart must not give an attacker a fresh set of guesses. One in the
        future (the wall clock stepped back) counts as just now."""
        ages = sorted(max(0.0, (now_utc - at).total_seconds()) for at in failed_at_utc)
        for age in reversed(ages):
            if age < self._window_s:
                self._failures.append(now - age)

    def locked(self, now: float) -> bool:
        while self._failures and now - self._failures[0] >= self._window_s:
            self._failures.popleft()
        return len(self._failures) >= self._limit

    def retry_after_s(self, now: float) -> float:
        return max(0.0, self._failures[0] + self._window_s - now) if self._failures else 0.0

    def failed(self, now: float) -> None:
        self._failures.append(now)


# -- command line ----------------------------------------------------------------------------


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "hash-pin", help="hash a reviewer PIN for the [[reviewers]] section of the config"
    )
    command.add_argument(
        "--stdin", action="store_true", help="read the PIN from standard input (for scripts)"
    )
    command.set_defaults(func=run_hash_pin)


def run_hash_pin(args: argparse.Namespace) -> int:
    if args.stdin:
        pin = sys.stdin.readline().strip()
    else:
        pin = getpass.getpass("PIN: ")
        if getpass.getpass("again: ") != pin:
            print("the two entries differ", file=sys.stderr)
            return 2
    if not pin.isdigit() or len(pin) < _MIN_PIN_DIGITS:
        print(f"a PIN is at least {_MIN_PIN_DIGITS} digits", file=sys.stderr)
        return 2
    print(hash_pin(pin))
    return 0
