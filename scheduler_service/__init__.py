"""scheduler-service: the time engine of the campaign platform."""

__version__ = "0.1.0"
