"""Classic fork bomb; marks in the output folder that the kernel refused a fork."""

import contextlib
import os

marker = os.path.join(os.environ["SIMCODER_OUT"], "fork_refused")
while True:
    try:
        os.fork()
    except OSError:
        if not os.path.exists(marker):
            with contextlib.suppress(OSError):
                open(marker, "w").close()
