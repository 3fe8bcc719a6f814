"""The benchmark: the task suite with pass@k (Table 1), cycle error (Table 2) and runtime (Fig 3)."""
