"""The supervisor of `run` and `worker --processes N`, over small real child processes:
a child's death stops the others, a signal stops all, a child that ignores SIGTERM is killed."""

import logging
import os
import signal
import sys
import threading

from helpers import wait_for
from scheduler_service.supervisor import Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
#: Ignores SIGTERM, says so on stdout once it does, then sleeps.
STUBBORN = [sys.executable, "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ignoring', flush=True); time.sleep(60)"]


def exiting(code, after_s=0.3):
    return [sys.executable, "-c", f"import time, sys; time.sleep({after_s}); sys.exit({code})"]


def gone(proc):
    return proc.poll() is not None


def test_a_child_that_dies_stops_the_others_and_its_code_is_the_groups(caplog):
    caplog.set_level(logging.INFO, "scheduler_service.supervisor")
    group = Supervisor({"sleeper": SLEEPER, "failing": exiting(3)}, grace_s=10)
    assert group.run() == 3
    assert group.children["sleeper"].returncode == -signal.SIGTERM
    assert "failing exited with code 3; stopping the others" in caplog.text
    assert "all processes stopped" in caplog.text


def test_a_child_that_ends_with_0_still_ends_the_group_with_1():
    # a role never ends by itself: even a clean exit means the group is incomplete
    assert Supervisor({"sleeper": SLEEPER, "done": exiting(0)}, grace_s=10).run() == 1


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(caplog, tmp_path):
    caplog.set_level(logging.INFO, "scheduler_service.supervisor")
    out = tmp_path / "stubborn.out"
    stubborn = [sys.executable, "-c", f"import sys; sys.stdout = open({str(out)!r}, 'w'); "
                + STUBBORN[2]]
    # the other child leaves once the stubborn one is ignoring SIGTERM
    waits = [sys.executable, "-c",
             f"import os, time\nwhile 'ignoring' not in (open({str(out)!r}).read() "
             f"if os.path.exists({str(out)!r}) else ''): time.sleep(0.05)"]
    group = Supervisor({"stubborn": stubborn, "leaving": waits}, grace_s=0.5)
    assert group.run() == 1
    assert group.children["stubborn"].returncode == -signal.SIGKILL
    assert "stubborn did not stop in 0.5s; killing it" in caplog.text


def test_sigterm_stops_every_child_and_the_group_exits_0_once_even_if_signalled_twice(caplog):
    caplog.set_level(logging.INFO, "scheduler_service.supervisor")
    group = Supervisor({"a": SLEEPER, "b": SLEEPER}, grace_s=10)
    previous = signal.getsignal(signal.SIGTERM)

    def signal_twice():
        wait_for(lambda: len(group.children) == 2, timeout=10, message="both children")
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=signal_twice)
    sender.start()
    try:
        assert group.run() == 0
    finally:
        sender.join()
    assert all(gone(child) for child in group.children.values())
    assert caplog.text.count("received SIGTERM, stopping") == 1
    # the handlers of the calling process are given back
    assert signal.getsignal(signal.SIGTERM) is previous

