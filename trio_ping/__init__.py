"""trio-ping: ICMP ping for trio, many targets at once over one socket per family."""

from trio_ping._io.icmp_socket import IcmpSocket, SocketPermissionError
from trio_ping._io.socket_options import MtuDiscovery
from trio_ping.pinger import Pinger, PingHandle, open_pinger
from trio_ping.results import PingResult, ResultSink, Status

__version__ = "0.1.0"

__all__ = [
    "IcmpSocket",
    "MtuDiscovery",
    "PingHandle",
    "PingResult",
    "Pinger",
    "ResultSink",
    "SocketPermissionError",
    "Status",
    "__version__",
    "open_pinger",
]
