"""``scheduler-service subscriber``: the fast path from the main API's messages to jobs.

* :mod:`.messages` — validation of the contract's messages and the subscriber's decisions
  (pure functions);
* :mod:`.loop` — the subscription, the reactions, and reconnecting forever;
* :mod:`.status` — what subscribers report through Redis: the ``subscriber`` health
  component and the ``scheduler_subscriber_*`` metrics.

See ``docs/subscriber.rst``.
"""

from .loop import Subscriber, run_subscriber

__all__ = ["Subscriber", "run_subscriber"]
