"""The Flask web app: health, metrics, the job API and the queue dashboard."""

from .app import create_app

__all__ = ["create_app"]
