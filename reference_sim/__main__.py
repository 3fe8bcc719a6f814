"""``python -m reference_sim``."""

from .cli import main

raise SystemExit(main())
