"""Every ``python`` block in the README runs, and says what the README says it does."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO, require_live

BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks() -> list[str]:
    """The README's python code blocks, in order."""
    return BLOCK.findall((REPO / "README.md").read_text())


def test_the_readme_has_the_api_example() -> None:
    blocks = python_blocks()
    assert blocks, "the README lost its library example"
    assert any("open_pinger" in block for block in blocks)


def test_readme_examples_run() -> None:
    require_live()  # they ping 127.0.0.1 over a raw socket
    for block in python_blocks():
        completed = subprocess.run(
            [sys.executable, "-c", block], capture_output=True, text=True, timeout=30, check=False
        )
        assert completed.returncode == 0, completed.stderr
        assert completed.stderr == ""
        # The API example prints "SEQ STATUS RTT_US" for its three requests.
        lines = completed.stdout.splitlines()
        assert [line.split()[:2] for line in lines] == [[str(seq), "reply"] for seq in range(3)]
        assert all(int(line.split()[2]) > 0 for line in lines)
