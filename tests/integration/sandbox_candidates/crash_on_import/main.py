"""Crashes before doing anything: imports a module that does not exist."""

import simcoder_module_that_does_not_exist  # noqa: F401

print("unreachable")
