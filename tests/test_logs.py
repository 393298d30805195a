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


def test_an_extra_named_like_a_context_field_wins_over_the_context(restore_root):
    # Inside a job for one campaign, code that logs about another campaign names it in
    # ``extra``; logging used to refuse the call ("Attempt to overwrite 'campaign_id'"),
    # which failed the job the line was logged in.
    stream = io.StringIO()
    configure_logging(load_settings({"LOG_FORMAT": "json", "LOG_LEVEL": "info"}), stream=stream)
    records = []
    keep = logging.Handler()
    keep.emit = records.append
    logging.getLogger().addHandler(keep)
    log = logging.getLogger("scheduler_service.example")
    with job_context(job_id="j-3", job_type="EVENT_EXPIRATION", campaign_id="c-1"):
        log.info("promoted", extra={"campaign_id": "c-2"})
        log.info("plain")
    promoted, plain = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert (promoted["job_id"], promoted["campaign_id"]) == ("j-3", "c-2")
    assert (plain["job_id"], plain["campaign_id"]) == ("j-3", "c-1")
    assert "_job_context" not in promoted
    first, second = records
    assert (first.job_id, first.campaign_id, second.campaign_id) == ("j-3", "c-2", "c-1")
    assert not hasattr(second, "attempt")


def test_text_lines_show_the_extra_over_the_context(restore_root):
    stream = io.StringIO()
    configure_logging(load_settings({"LOG_FORMAT": "text", "LOG_LEVEL": "info"}), stream=stream)
    with job_context(job_id="j-4", campaign_id="c-1"):
        logging.getLogger("scheduler_service.example").info("x", extra={"campaign_id": "c-2"})
    assert stream.getvalue().rstrip().endswith("x [job_id=j-4 campaign_id=c-2]")
