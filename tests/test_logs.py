"""Log lines: JSON by default with job context as fields; text for people."""

import io
import json
import logging

import pytest

from scheduler_service.config import load_settings
from scheduler_service.logs import configure_logging, job_context


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_carry_timestamp_level_logger_message_and_job_context(restore_root):
    stream = io.StringIO()
    configure_logging(load_settings({"LOG_FORMAT": "json", "LOG_LEVEL": "debug"}), stream=stream)
    log = logging.getLogger("scheduler_service.example")
    with job_context(job_id="j-1", job_type="PING", campaign_id="c-9"):
        log.info("job %s", "started", extra={"attempt": 2})
    log.warning("outside")
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["message"] == "job started" and first["level"] == "INFO"
    assert first["logger"] == "scheduler_service.example"
    assert first["timestamp"].endswith("+00:00")
    assert (first["job_id"], first["job_type"], first["campaign_id"], first["attempt"]) == ("j-1", "PING", "c-9", 2)
    assert "job_id" not in second


def test_level_filters_and_text_format(restore_root):
    stream = io.StringIO()
    configure_logging(load_settings({"LOG_FORMAT": "text", "LOG_LEVEL": "warning"}), stream=stream)
    log = logging.getLogger("scheduler_service.example")
    log.info("hidden")
    with job_context(job_id="j-2"):
        log.error("shown")
    text = stream.getvalue()
    assert "hidden" not in text
    assert "ERROR scheduler_service.example: shown [job_id=j-2]" in text
