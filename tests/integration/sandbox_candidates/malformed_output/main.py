"""Leaves a malformed result: garbage JSON ("garbage"), a symlink ("symlink") or a FIFO ("fifo")."""

import os
from pathlib import Path

mode = Path(os.path.join(os.environ["SIMCODER_INPUTS"], "mode.txt")).read_text().strip()
out = os.environ["SIMCODER_OUT"]
if mode == "garbage":
    with open(os.path.join(out, "result.json"), "w") as f:
        f.write('{"cycles": 12, "truncated')
elif mode == "symlink":
    os.symlink("/etc/passwd", os.path.join(out, "result.json"))
elif mode == "fifo":
    os.mkfifo(os.path.join(out, "result.json"))
print("left", mode)
