"""The Celery 5 side of the throughput comparison: one no-op task, late acknowledgement.

Runs only inside ``bench/.celery-venv`` (Celery needs redis-py 5 or later, our venv has 4).
The broker URL comes from ``BENCH_CELERY_BROKER``; there is no result backend.

``python _celery_app.py N`` sends ``N`` tasks with ``delay()``;
``celery -A _celery_app worker ...`` runs them.
"""

import os
import sys

from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_CELERY_BROKER"])
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop", acks_late=True, ignore_result=True)
def noop():
    pass


if __name__ == "__main__":
    for _ in range(int(sys.argv[1])):
        noop.delay()
