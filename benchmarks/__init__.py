"""Benchmarks for trio-ping, run with ``python -m benchmarks`` (or ``sudo nox -s bench``).

They build their own namespace lab (:mod:`tests.lab.netns`), run trio-ping beside fping,
iputils ping and tcpdump inside its client namespace, print what each run cost and how it
compares with the targets of issues 3 (batch at scale) and 6 (measurement truth), and
finish with one table, one row per case. They are measurements, not tests: a missed
target is reported, not raised.
"""
