"""The exception tree of the scheduler service.

Every error the service raises on purpose derives from :class:`SchedulerServiceError`.
Third-party exceptions are translated at the boundary where they occur, so that code
above the API client or the broker never needs to know which library failed.
"""


class SchedulerServiceError(Exception):
    """Base class of every error the scheduler service raises on purpose."""


class PermanentError(SchedulerServiceError):
    """An error that retrying cannot change: a job that raises one is failed at once.

    A base class mixed into the errors that say so (bad input, unknown job type, an entity
    that does not exist, a refused credential...); a handler raises
    :class:`PermanentJobError` for a verdict of its own.
    """


class ConfigError(SchedulerServiceError):
    """The environment holds missing or invalid settings; the message names each one."""

    def __init__(self, problems):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


class PluginLoadError(SchedulerServiceError):
    """A plugin failed to load or registered something that clashes with another plugin."""


class InvalidPayload(PermanentError):
    """A job payload failed its job type's schema.

    Attributes:
        details: a list of ``{"field": ..., "message": ...}`` dicts, one per problem.
    """

    def __init__(self, message, details=()):
        super().__init__(message)
        self.details = list(details)


class UnknownJobType(PermanentError):
    """No plugin registered a job type of that name."""


class UpstreamError(SchedulerServiceError):
    """The main campaign API answered with an error or could not be reached.

    Attributes:
        operation: the GraphQL operation name, when known.
        code: the GraphQL ``extensions.code``, when known.
    """

    def __init__(self, message, *, operation=None, code=None):
        super().__init__(message)
        self.operation = operation
        self.code = code


class NotFound(UpstreamError, PermanentError):
    """The entity asked for does not exist (``NOT_FOUND``); permanent for this attempt."""


class Conflict(UpstreamError, PermanentError):
    """An optimistic-lock version mismatch or an already completed entity (``CONFLICT``)."""


class BadInput(UpstreamError, PermanentError):
    """The API rejected the input (``BAD_USER_INPUT``); retrying will not help."""


class Unauthenticated(UpstreamError, PermanentError):
    """The API rejected the service account's credentials (``UNAUTHENTICATED``/401)."""


class Forbidden(UpstreamError, PermanentError):
    """The service account may not do this (``FORBIDDEN``)."""


class Transient(UpstreamError):
    """A timeout, connection error, HTTP 5xx or ``INTERNAL``: worth retrying later.

    Attributes:
        maybe_applied: False only when the request certainly never reached the API (the
            connection could not be opened, or the API refused it before doing anything,
            as with HTTP 429); True when it may have been carried out although no answer
            came back (a read timeout, a reset, a 5xx). A mutation is never sent again
            blindly after a failure that may have applied it.
        circuit_open: set when the circuit breaker was open once this call had failed (the
            call opened it, or failed while others did): the :class:`CircuitOpen` a call
            made a moment later would meet. The API, not the job, is failing then.
    """

    def __init__(self, message, *, operation=None, code=None, maybe_applied=True):
        super().__init__(message, operation=operation, code=code)
        self.maybe_applied = maybe_applied
        self.circuit_open: CircuitOpen | None = None


class CircuitOpen(UpstreamError):
    """The circuit breaker is open: the call was not attempted.

    Attributes:
        retry_after_s: seconds until the breaker lets a trial call through.
        spread_s: how widely callers that wait for the breaker should spread their return
            after ``retry_after_s``, so that they do not all come back at the same moment.
    """

    def __init__(self, message, *, retry_after_s=0.0, operation=None, spread_s=0.0):
        super().__init__(message, operation=operation)
        self.retry_after_s = retry_after_s
        self.spread_s = spread_s


class PermanentJobError(PermanentError):
    """A handler's verdict that this job cannot succeed; it is failed without retries."""
