"""Starts a detached child that sleeps for ten minutes, then exits 0 at once."""

import os
import subprocess
import sys
from pathlib import Path

token = Path(os.path.join(os.environ["SIMCODER_INPUTS"], "token.txt")).read_text().strip()
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(600)", token],
    start_new_session=True,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
with open(os.path.join(os.environ["SIMCODER_OUT"], "child_pid.txt"), "w") as f:
    f.write(str(child.pid))
print("left child", child.pid, "running")
