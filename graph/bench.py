"""``python -m graph.bench``: the benchmark's command line (logic in :mod:`taskbench`)."""

from __future__ import annotations

from taskbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
