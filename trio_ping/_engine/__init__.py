"""The engine: the sender, receiver and timeout tasks that drive one ICMP socket."""
