"""The serving half every serial-device simulator shares: a real pseudo-terminal (opened by
pyserial like a USB adapter, through a stable symlink like /dev/serial/by-id) and/or a TCP
listener (socket:// URLs, like a serial-to-Ethernet converter), served by one selector loop in
one thread. Subclasses speak their protocol in the hooks `on_connect`, `on_data` and `on_loop`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import tempfile
import threading
import tty
from collections.abc import Callable
from typing import Self

_IDLE_WAIT_S = 0.01  # longest sleep of the loop: bounds stop() latency and tick jitter


class Endpoint:
    """One connection: the pty or one TCP client. `state` is the protocol's per-connection data."""

    def __init__(
        self,
        read: Callable[[], bytes | None],
        write: Callable[[bytes], bool],
        close: Callable[[], None],
        *,
        tcp: bool = False,
    ) -> None:
        self.read = read  # None: nothing to read now; b"": the peer left
        self.write = write  # False: the peer is gone
        self.close = close
        self.tcp = tcp
        self.state: dict[str, object] = {}


class EndpointServer:
    """A pty and/or TCP listener served in one thread, with cable pulls (`disconnect`)."""

    name = "device-sim"

    def __init__(self, *, serve_pty: bool = True, tcp_port: int | None = 0) -> None:
        self._serve_pty = serve_pty
        self._tcp_port = tcp_port
        self._selector = selectors.DefaultSelector()
        self.endpoints: dict[int, Endpoint] = {}
        self._listener: socket.socket | None = None
        self._pty_fds: tuple[int, int] | None = None
        self._link_dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        self.lock = threading.RLock()
        self._applied = threading.Condition(self.lock)
        self._want_connected = True
        self._connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pty_device: str | None = None
        self.silent = False  # the port stays open but the device says nothing (switched off)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        with self.lock:
            self._open_endpoints()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self.lock:
            self._close_endpoints()
        self._selector.close()
        with contextlib.suppress(OSError):
            os.rmdir(self._link_dir)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pty_path(self) -> str:
        """A stable path to the pty (a symlink, like /dev/serial/by-id) that survives reconnects."""
        return os.path.join(self._link_dir, "tty")

    @property
    def tcp_port(self) -> int | None:
        return self._tcp_port

    @property
    def tcp_url(self) -> str:
        return f"socket://127.0.0.1:{self._tcp_port}"

    # -- faults (any thread) --------------------------------------------------------------------

    def disconnect(self) -> None:
        """Close the pty and drop TCP clients (the cable is pulled); refuse until reconnect()."""
        self._set_connected(False)

    def reconnect(self) -> None:
        self._set_connected(True)

    def drop_clients(self) -> None:
        """Close every TCP connection (a network blip); the listener stays."""
        with self.lock:
            for fd, endpoint in list(self.endpoints.items()):
                if endpoint.tcp:
                    self.drop(fd, endpoint)

    def _set_connected(self, connected: bool) -> None:
        with self.lock:
            self._want_connected = connected
            self._applied.wait_for(lambda: self._connected == connected, timeout=2.0)

    # -- protocol hooks (simulator thread, under the lock) --------------------------------------

    def on_connect(self, endpoint: Endpoint) -> None:
        """A new pty or TCP client."""

    def on_data(self, endpoint: Endpoint, data: bytes) -> None:
        raise NotImplementedError

    def on_loop(self) -> None:
        """Periodic work after each wait (not while silent): `on_tick` for every endpoint."""
        for fd, endpoint in list(self.endpoints.items()):
            if not self.on_tick(endpoint):
                self.drop(fd, endpoint)

    def on_tick(self, endpoint: Endpoint) -> bool:
        """Periodic work for one endpoint; False drops it."""
        return True

    def wait_s(self) -> float:
        """How long the loop may wait for input before `on_loop` runs again (real seconds)."""
        return _IDLE_WAIT_S

    def drop(self, fd: int, endpoint: Endpoint) -> None:
        if self.endpoints.pop(fd, None) is not None:
            self._selector.unregister(fd)
            endpoint.close()

    # -- internals ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                self._apply_connection_state()
            for key, _ in self._selector.select(timeout=max(0.0, self.wait_s())):
                with self.lock:
                    self._on_readable(key.fd, key.data)
            with self.lock:
                if not self.silent:
                    self.on_loop()

    def _on_readable(self, fd: int, endpoint: Endpoint | None) -> None:
        if endpoint is None:
            if self._listener is not None:
                self._accept(self._listener)
            return
        if self.endpoints.get(fd) is not endpoint:
            return  # dropped earlier in this round
        data = endpoint.read()
        if data == b"":
            self.drop(fd, endpoint)
        elif data and not self.silent:
            self.on_data(endpoint, data)

    def _apply_connection_state(self) -> None:
        if self._want_connected and not self._connected:
            self._open_endpoints()
        elif not self._want_connected and self._connected:
            self._close_endpoints()
        self._applied.notify_all()

    def _open_endpoints(self) -> None:
        if self._serve_pty:
            self._open_pty()
        if self._tcp_port is not None:
            listener = socket.create_server(("127.0.0.1", self._tcp_port))
            listener.setblocking(False)
            self._tcp_port = listener.getsockname()[1]
            self._listener = listener
            self._selector.register(listener.fileno(), selectors.EVENT_READ, None)
        self._connected = True

    def _close_endpoints(self) -> None:
        for fd, endpoint in list(self.endpoints.items()):
            self.drop(fd, endpoint)
        if self._pty_fds is not None:
            # The link goes first, as udev's does when the adapter is pulled: the kernel reuses
            # the pty's number at once, and a daemon reconnecting through a link to a closed
            # /dev/pts/N would open another simulator's pty and steal its bytes.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.pty_path)
            for fd in self._pty_fds:
                os.close(fd)
            self._pty_fds = None
        if self._listener is not None:
            self._selector.unregister(self._listener.fileno())
            self._listener.close()
            self._listener = None
        self._connected = False

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation: bytes pass untouched
        os.set_blocking(master, False)
        self._pty_fds = (master, slave)
        self.pty_device = os.ttyname(slave)
        # Re-point the stable symlink atomically, as udev does when a USB adapter comes back.
        temporary = self.pty_path + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        os.symlink(self.pty_device, temporary)
        os.replace(temporary, self.pty_path)

        def read() -> bytes | None:
            try:
                return os.read(master, 4096)
            except OSError:
                return None  # nobody has the slave open: the pty stays, so does the device

        def write(data: bytes) -> bool:
            # A real device writes into a cable nobody listens to: drop what does not fit.
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(master, data)
            return True

        self._register(master, Endpoint(read, write, lambda: None))

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            return
        client.settimeout(0.5)  # a client that stops reading is dropped, not waited for

        def read() -> bytes | None:
            try:
                return client.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                return b""

        def write(data: bytes) -> bool:
            try:
                client.sendall(data)
            except OSError:
                return False
            return True

        self._register(client.fileno(), Endpoint(read, write, client.close, tcp=True))

    def _register(self, fd: int, endpoint: Endpoint) -> None:
        self.endpoints[fd] = endpoint
        self._selector.register(fd, selectors.EVENT_READ, endpoint)
        self.on_connect(endpoint)
