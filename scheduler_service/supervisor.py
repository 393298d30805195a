"""Runs several service processes as one group (``run`` and ``dev``).

Each role is a child process of its own (``scheduler-service web``, ``worker``...).
SIGINT or SIGTERM stops every child gracefully, then kills what is left after a grace
period; if one child dies on its own, the others are stopped and the group exits
non-zero, so that whoever runs the group (systemd, a container runtime) restarts it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from .green import is_patched

logger = logging.getLogger(__name__)

#: Seconds children get to finish after SIGTERM before SIGKILL.
DEFAULT_GRACE_S = 30
#: Seconds a role needs past ``SHUTDOWN_GRACE_S`` to hand back what is left and close.
STOP_MARGIN_S = 10
#: The variable through which a supervisor tells its children its pid.
SUPERVISOR_PID_ENV = "SCHEDULER_SUPERVISOR_PID"
#: How often a child checks that its supervisor is still its parent.
PARENT_CHECK_S = 1.0


class Supervisor:
    """Start child commands, watch them, stop them together."""

    def __init__(self, commands: dict[str, list[str]], env=None, grace_s: float = DEFAULT_GRACE_S):
        self.commands = commands
        self.env = env
        self.grace_s = grace_s
        self.children: dict[str, subprocess.Popen] = {}
        self._stopping = False

    def start(self):
        # Children watch this pid: should we die without stopping them (SIGKILL, OOM), they
        # stop themselves instead of living on with the port and the locks.
        env = {**(self.env if self.env is not None else os.environ),
               SUPERVISOR_PID_ENV: str(os.getpid())}
        for name, argv in self.commands.items():
            # A group of its own: a terminal's Ctrl-C reaches only us, and we forward one
            # SIGTERM; a second signal would make Dramatiq kill its workers mid-job.
            self.children[name] = subprocess.Popen(argv, env=env, process_group=0)
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


def stop_timeout_s(settings) -> float:
    """How long a stopping role may take: ``SHUTDOWN_GRACE_S`` for the work in hand, plus
    :data:`STOP_MARGIN_S` to hand back the rest and close its connections. A supervisor
    (or container runtime) should wait this long before it kills."""
    return settings.shutdown_grace_s + STOP_MARGIN_S


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


def watch_parent(parent_pid: int, interval_s: float = PARENT_CHECK_S,
                 grace_s: float = DEFAULT_GRACE_S) -> None:
    """Stop this process when ``parent_pid`` is no longer its parent.

    A daemon thread compares ``os.getppid()`` with ``parent_pid`` every ``interval_s``; once
    the parent is gone (the child was handed to init or a subreaper), it sends this process
    SIGTERM, so the role shuts down the way it always does, and SIGKILL after ``grace_s``
    should that not finish. Portable, unlike ``PR_SET_PDEATHSIG``, and it covers roles that
    fork further processes (gunicorn, Dramatiq) since each stops its own children.

    In a process gevent has patched (the web process), the thread is still an OS thread:
    a greenlet "thread" would live on in every forked gunicorn worker, whose parent is not
    the supervisor, and end there with a traceback from ``threading``.
    """
    sleep, start = time.sleep, None
    if is_patched():
        from gevent import monkey

        sleep = monkey.get_original("time", "sleep")
        start = monkey.get_original("_thread", "start_new_thread")

    def watch():
        while os.getppid() == parent_pid:
            sleep(interval_s)
        logger.warning("the supervising process %s is gone; stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)
        sleep(grace_s)
        logger.error("still running %ss after the supervisor died; killing this process", grace_s)
        os.kill(os.getpid(), signal.SIGKILL)

    if start is not None:
        start(watch, ())
    else:
        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
