"""The sans-IO core: ICMP codec, request tracker, schedule, timestamp arithmetic.

Nothing here imports ``socket`` or trio or reads a clock (import-linter checks it): bytes
and times go in, typed messages and decisions come out.
"""
