"""A toy simulator used only as in-context examples: a 1-D vector unit fed from DRAM through a buffer."""
