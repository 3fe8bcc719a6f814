"""``python -m reference_sim``."""

from .cli import keep_freed_memory, main

keep_freed_memory()
raise SystemExit(main())
