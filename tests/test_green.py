"""Choosing the web process's worker class before anything is imported (scheduler_service.green)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from scheduler_service.embedded_redis import free_port
from scheduler_service.green import DEFAULT_WEB_WORKER_CLASS, web_worker_class
from scheduler_service.supervisor import PARENT_CHECK_S
from scheduler_service.webserver import GeventNotPatched, JsonErrorWorker, worker_class_option
from helpers import stop_process, wait_for


@pytest.mark.parametrize("args, environ, expected", [
    (["web"], {}, DEFAULT_WEB_WORKER_CLASS),
    (["web", "--port", "9000"], {"WEB_WORKER_CLASS": "gthread"}, "gthread"),
    (["web", "--worker-class", "gthread"], {}, "gthread"),
    (["web", "--worker-class=GThread"], {"WEB_WORKER_CLASS": "gevent"}, "gthread"),
    (["web", "--worker-class", "gevent"], {"WEB_WORKER_CLASS": "gthread"}, "gevent"),
    (["web", "--worker-class"], {"WEB_WORKER_CLASS": " GTHREAD "}, "gthread"),
    (["web", "--", "--worker-class", "gthread"], {}, DEFAULT_WEB_WORKER_CLASS),
    (["web", "--worker-class", "nope"], {}, "nope"),
    (["worker", "--worker-class", "gevent"], {"WEB_WORKER_CLASS": "gevent"}, None),
    (["dev"], {}, None),
    ([], {}, None),
])
def test_the_worker_class_is_read_from_the_command_line_then_the_variable(args, environ, expected):
    assert web_worker_class(args, environ) == expected


def test_the_default_is_gevent():
    assert DEFAULT_WEB_WORKER_CLASS == "gevent"


def test_gevent_in_a_process_not_patched_at_start_is_refused_naming_the_variable():
    # This test process was not patched: serving gevent here would leave Dramatiq and the
    # sockets on their thread implementations.
    with pytest.raises(GeventNotPatched, match=r"gevent worker class \(WEB_WORKER_CLASS, --worker-class\) .* gthread"):
        worker_class_option("gevent")
    assert worker_class_option("gthread") is JsonErrorWorker
    with pytest.raises(ValueError, match="worker_class"):
        worker_class_option("sync")


def test_the_entry_point_patches_only_the_gevent_web_process():
    probe = textwrap.dedent("""
        import os, sys
        from scheduler_service.green import is_patched, patch_for_command
        print(patch_for_command(sys.argv[1:], os.environ), is_patched(),
              "dramatiq" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "WEB_WORKER_CLASS"}

    def run(*args, **extra):
        out = subprocess.run([sys.executable, "-c", probe, *args], env={**env, **extra},
                             capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert run("web") == ["True", "True", "False"]
    assert run("web", WEB_WORKER_CLASS="gthread") == ["False", "False", "False"]
    assert run("worker") == ["False", "False", "False"]


def test_a_parent_watch_inherited_by_a_fork_leaves_the_child_alone():
    # Under gevent the parent-watch "thread" is a greenlet, and greenlets live on in a
    # forked child (a gunicorn worker), whose parent is not the supervisor: it must not stop
    # the child.
    script = textwrap.dedent("""
        from gevent import monkey; monkey.patch_all()
        import os, sys, time
        from scheduler_service.supervisor import watch_parent
        watch_parent(os.getppid(), interval_s=0.05, grace_s=5)
        pid = os.fork()
        if pid == 0:
            time.sleep(0.5)  # several checks of the inherited watch
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0", out.stderr
    assert "Traceback" not in out.stderr, out.stderr


def test_the_web_process_under_a_supervisor_starts_its_workers_without_a_traceback(
        redis_server, child_env, tmp_path):
    # Given `web` started the way `dev` and `run` start it: watching its supervisor (here
    # this test process), gevent workers forked from it
    port = free_port()
    env = child_env(REDIS_URL=redis_server.url, SCHEDULER_SUPERVISOR_PID=str(os.getpid()),
                    LOG_LEVEL="INFO")
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "web", "--port",
                                 str(port), "--workers", "2"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: log.read_text().count("Booting worker") == 2 and
                 "web listening on" in log.read_text(), timeout=60, message="two workers")
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok,
                 timeout=30, message="/health")
        # a watch inherited by a worker ends at its first check, a check interval after the fork
        time.sleep(PARENT_CHECK_S + 0.5)
    finally:
        stop_process(proc)
    # Then no worker printed a traceback (a greenlet watch inherited by the fork did)
    text = log.read_text()
    assert "gevent worker(s)" in text
    assert "Traceback" not in text and "KeyError" not in text, text[-3000:]
