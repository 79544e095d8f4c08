"""A real mosquitto broker as a child process, for tests, benchmarks and the demo.

Listens on a free loopback port, keeps persistence in its own directory, and can be stopped and
restarted on the same port with the same persistence (for "a broker restart loses nothing").
"""

from __future__ import annotations

import asyncio
import getpass
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class MosquittoNotFound(RuntimeError):
    pass


def find_mosquitto() -> str:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise MosquittoNotFound(
        "mosquitto is required for the MQTT tests and was not found on PATH or in /usr/sbin;"
        " install it (Debian: apt-get install mosquitto)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TlsListener:
    """TLS settings for the broker's one listener (config/mosquitto/README.md).

    With `require_certificate` a client without a certificate signed by `ca_file` fails the
    handshake; with `use_identity_as_username` the certificate's CN becomes the user name the ACL
    sees (`%u`, `user` lines), whatever user name the client sends."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = True
    use_identity_as_username: bool = True


class MosquittoBroker:
    """mosquitto on 127.0.0.1:<free port>. `acl` is the text of an acl_file (None: allow all);
    `allow_anonymous=False` with no password file refuses every connection. `tls` makes the one
    listener a TLS listener; `password_file` (made with mosquitto_passwd) is used as is."""

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        acl: str | None = None,
        allow_anonymous: bool = True,
        start_timeout_s: float = 10.0,
        tls: TlsListener | None = None,
        password_file: Path | None = None,
        extra_config: tuple[str, ...] = (),
    ) -> None:
        self.executable = find_mosquitto()
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "mosquitto.log"
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.tls = tls
        self.password_file = password_file
        self.extra_config = extra_config  # more mosquitto.conf lines (limits under test)
        self.config_path = self._write_config(acl, allow_anonymous)

    def _write_config(self, acl: str | None, allow_anonymous: bool) -> Path:
        persistence = self.workdir / "persistence"
        persistence.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if allow_anonymous else 'false'}",
            # mosquitto started as root drops to user "mosquitto", which cannot write our tmp dir.
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {persistence}/",
            f"log_dest file {self.log_path}",
            "log_type all",
            # Unlimited queue for offline persistent sessions: the sink may be away for a while.
            "max_queued_messages 0",
            # Without it the broker's Nagle waits on our delayed ACKs: ~40 ms per request/response.
            "set_tcp_nodelay true",
        ]
        if self.tls is not None:
            tls = self.tls
            lines += [
                f"cafile {tls.ca_file}",
                f"certfile {tls.cert_file}",
                f"keyfile {tls.key_file}",
                f"require_certificate {'true' if tls.require_certificate else 'false'}",
                f"use_identity_as_username {'true' if tls.use_identity_as_username else 'false'}",
            ]
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if acl is not None:
            acl_path = self.workdir / "acl"
            acl_path.write_text(acl)
            lines.append(f"acl_file {acl_path}")
        lines += self.extra_config
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The mosquitto process (benchmarks read its CPU time); None before start."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        self._process = subprocess.Popen(
            [self.executable, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {stderr}\n{self.log_tail()}")
            if self._accepts_connections():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port}\n{self.log_tail()}")

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM: mosquitto writes its persistence file and exits."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class EmbeddedBroker:
    """amqtt, a pure-Python MQTT 3.1.1 broker, in a thread of its own: the demo's broker on a
    machine without mosquitto. Not for production and not for the tests (which use mosquitto)."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s) or self._error:
            raise RuntimeError(f"embedded broker did not start: {self._error}")

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from amqtt.broker import Broker  # optional dependency: only the demo needs it

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        broker = Broker(config)
        try:
            await broker.start()
        except Exception as exc:  # reported to start(), which raises it in the caller's thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        await self._stop.wait()
        await broker.shutdown()
