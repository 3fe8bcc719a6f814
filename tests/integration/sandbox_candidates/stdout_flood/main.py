"""Floods stdout with 20 MB, then ends with a recognisable line."""

import sys

chunk = "flood " * 10_000 + "\n"
written = 0
while written < 20_000_000:
    sys.stdout.write(chunk)
    written += len(chunk)
print("END OF FLOOD")
