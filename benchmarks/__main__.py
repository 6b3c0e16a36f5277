"""``python -m benchmarks [--quick] [CASE ...]``: see :mod:`benchmarks.suite`."""

from __future__ import annotations

import sys
from pathlib import Path

# The lab lives in tests/lab: make the repository root importable however we are started.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks.suite import main  # noqa: E402 -- needs the path above

if __name__ == "__main__":
    sys.exit(main())
