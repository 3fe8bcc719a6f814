"""``python -m graph.bench``: the benchmark's command line (logic in :mod:`agents.bench`)."""

from __future__ import annotations

from agents.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
