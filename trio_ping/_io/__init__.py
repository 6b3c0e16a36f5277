"""The I/O layer: the async ICMP socket, the recvmmsg reader, the timerfd pacer.

Below the engine, above the sans-IO core: everything here touches a file descriptor.
"""
