"""Helpers of the API client tests."""


def count_requests(client) -> list:
    """Record every HTTP response the client receives; returns the (growing) list."""
    seen = []
    client.transport.session.hooks["response"].append(lambda r, *a, **k: seen.append(r.status_code))
    return seen
