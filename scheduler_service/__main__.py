"""The ``scheduler-service`` console script, also run as ``python -m scheduler_service``.

Before the CLI (and with it the standard library's sockets, Redis and Dramatiq) is imported,
:func:`~scheduler_service.green.patch_for_command` patches the process for gevent when it is
to serve the web with gevent workers.
"""

import os
import sys

from .green import patch_for_command


def main():
    """Console-script entry point."""
    patch_for_command(sys.argv[1:], os.environ)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
