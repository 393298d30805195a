"""Runs several service processes as one group (``run`` and ``dev``).

Each role is a child process of its own (``scheduler-service web``, ``worker``...).
SIGINT or SIGTERM stops every child gracefully, then kills what is left after a grace
period; if one child dies on its own, the others are stopped and the group exits
non-zero, so that whoever runs the group (systemd, a container runtime) restarts it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time

logger = logging.getLogger(__name__)

#: Seconds children get to finish after SIGTERM before SIGKILL.
DEFAULT_GRACE_S = 30


class Supervisor:
    """Start child commands, watch them, stop them together."""

    def __init__(self, commands: dict[str, list[str]], env=None, grace_s: float = DEFAULT_GRACE_S):
        self.commands = commands
        self.env = env
        self.grace_s = grace_s
        self.children: dict[str, subprocess.Popen] = {}
        self._stopping = False

    def start(self):
        for name, argv in self.commands.items():
            # A group of its own: a terminal's Ctrl-C reaches only us, and we forward one
            # SIGTERM; a second signal would make Dramatiq kill its workers mid-job.
            self.children[name] = subprocess.Popen(argv, env=self.env, process_group=0)
            logger.info("started %s (pid %s)", name, self.children[name].pid)

    def _on_signal(self, signum, frame):
        if self._stopping:
            return
        logger.info("received %s, stopping", signal.Signals(signum).name)
        self._stopping = True

    def run(self) -> int:
        """Start the children and block until a signal or a child's death; returns the exit code."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            code = 0
            while not self._stopping:
                for name, child in self.children.items():
                    if child.poll() is not None:
                        logger.error("%s exited with code %s; stopping the others", name, child.returncode)
                        code = child.returncode or 1
                        self._stopping = True
                        break
                time.sleep(0.2)
            self.stop()
            return code
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def stop(self):
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + self.grace_s
        for name, child in self.children.items():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %ss; killing it", name, self.grace_s)
                child.kill()
                child.wait()
        logger.info("all processes stopped")


def self_command(*args: str) -> list[str]:
    """argv that runs this same CLI with ``args`` (works inside and outside a venv)."""
    return [sys.executable, "-m", "scheduler_service", *args]


def stop_event_on_signals(what: str = "stopping") -> threading.Event:
    """An event set by the first SIGINT or SIGTERM (the shutdown of a single-role process)."""
    stop = threading.Event()

    def on_signal(signum, frame):
        logger.info("received %s, %s", signal.Signals(signum).name, what)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop
