"""The reference campaign API: a small but real GraphQL server for the contract.

It serves the very ``schema.graphql`` the scheduler's client is generated from, keeps its
data in SQLite, checks an API key, enforces optimistic locking, pages with cursors and
publishes the contract's Redis messages. Local development, the demo campaign, the
integration tests and the benchmarks talk to it over HTTP exactly as to the main API.

Modules, one concern each:

* :mod:`.errors`: the GraphQL error codes of the contract.
* :mod:`.scalars`: ``DateTime`` and ``JSON``.
* :mod:`.jsonpatch`: the JSON-Patch subset effects use.
* :mod:`.tables`: the SQLite tables and how rows become GraphQL values.
* :mod:`.storage`: connections, transactions and queries.
* :mod:`.paging`: page sizes and opaque cursors.
* :mod:`.publisher`: the Redis messages.
* :mod:`.resolvers`: queries and mutations.
* :mod:`.schema`: loading ``schema.graphql`` and binding the resolvers.
* :mod:`.app`: the WSGI app (``POST /graphql``), authentication and test hooks.
* :mod:`.seed`: the demo campaign.
* :mod:`.server`: serving it with gunicorn.
"""

from .app import create_app

__all__ = ["create_app"]
