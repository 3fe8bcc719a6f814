"""Writes too much output: one 100 MiB file ("one_big"), forty 1 MiB files ("many") or 1 MiB files forever."""

import os
from pathlib import Path

mode = Path(os.path.join(os.environ["SIMCODER_INPUTS"], "mode.txt")).read_text().strip()
out = os.environ["SIMCODER_OUT"]
block = b"\0" * (1 << 20)
if mode == "one_big":
    with open(os.path.join(out, "result.bin"), "wb") as f:
        for _ in range(100):
            f.write(block)
else:
    count = 40 if mode == "many" else 10**9
    for i in range(count):
        with open(os.path.join(out, f"part{i:04d}.bin"), "wb") as f:
            f.write(block)
print("wrote", mode)
