"""The page a full benchmark run writes to benchmarks/RESULTS.md."""

from __future__ import annotations

from benchmarks.suite import RESULTS, results_page


def test_the_results_page_holds_the_runs_header_and_table() -> None:
    page = results_page(["command: python -m benchmarks", "date: 2026-12-02"], "| a | b |")
    assert page.startswith("# Benchmark results\n")
    assert "```\ncommand: python -m benchmarks\ndate: 2026-12-02\n```" in page
    assert page.endswith("| a | b |\n")
    assert RESULTS.name == "RESULTS.md"
    assert RESULTS.parent.name == "benchmarks"
