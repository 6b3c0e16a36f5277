"""The engine of one ICMP socket.

- ``engine``: SocketEngine, its sender, receiver and timeout tasks (``run``).
- ``sessions``: the session registry (identifiers, payloads, starting, settling, ending).
- ``alarm``: the sleep until a moment that another task may bring forward, which the
  sender and the timeout task each wait on.
"""
