"""``python -m scheduler_service``: the same CLI as ``scheduler-service``."""

from .cli import main

if __name__ == "__main__":
    main()
