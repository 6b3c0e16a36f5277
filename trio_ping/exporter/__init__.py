"""trio-ping-exporter: every configured host pinged forever, served to Prometheus with
smokeping_prober's metric names. A layer above the library, beside the command line."""

from trio_ping.exporter.main import main

__all__ = ["main"]
