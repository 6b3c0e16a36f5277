"""The ``trio-ping`` command line: arguments, target lines, output, summaries, exit statuses.

The top layer: nothing else in the package imports it.
"""

from trio_ping.cli.main import main

__all__ = ["main"]
