"""Classic fork bomb; says on stdout (once) that the kernel refused a fork."""

import os
import sys

told = False
while True:
    try:
        os.fork()
    except OSError:
        if not told:
            told = True
            sys.stdout.write("fork_refused\n")
            sys.stdout.flush()
