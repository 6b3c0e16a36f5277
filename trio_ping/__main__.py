"""``python -m trio_ping``: the same as the ``trio-ping`` command."""

import sys

from trio_ping.cli import main

if __name__ == "__main__":
    sys.exit(main())
