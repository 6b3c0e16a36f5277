"""``python -m trio_ping.exporter``: the same as the ``trio-ping-exporter`` command."""

import sys

from trio_ping.exporter import main

if __name__ == "__main__":
    sys.exit(main())
