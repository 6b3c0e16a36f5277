"""Every ``python`` block in the README runs, and says what the README says it does."""

from __future__ import annotations

import re
import sys

from tests.conftest import REPO
from tests.lab.netns import Lab

BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks() -> list[str]:
    """The README's python code blocks, in order."""
    return BLOCK.findall((REPO / "README.md").read_text())


def test_the_readme_has_the_api_example() -> None:
    blocks = python_blocks()
    assert blocks, "the README lost its library example"
    assert any("open_pinger" in block for block in blocks)


def test_readme_examples_run(lab: Lab) -> None:
    # Inside the lab's client namespace, like every live test: an example edited to name
    # another address or a host name then reaches nothing outside the lab.
    for block in python_blocks():
        completed = lab.run([sys.executable, "-c", block], capture_output=True, timeout=30)
        stdout, stderr = completed.stdout.decode(), completed.stderr.decode()
        assert completed.returncode == 0, stderr
        assert stderr == ""
        # The API example prints "SEQ STATUS RTT_US" for its three requests.
        lines = stdout.splitlines()
        assert [line.split()[:2] for line in lines] == [[str(seq), "reply"] for seq in range(3)]
        assert all(int(line.split()[2]) > 0 for line in lines)
