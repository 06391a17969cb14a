"""``python -m frontend_server serve …`` (how the master daemon starts it) and ``user add``."""
import sys

from frontend_server.cli import main

if __name__ == "__main__":
    sys.exit(main())
