"""Lists network interfaces and tries to reach a server on 127.0.0.1 (the port comes from the test)."""

import json
import os
import socket
from pathlib import Path

port = int(Path(os.path.join(os.environ["SIMCODER_INPUTS"], "port.txt")).read_text())
report = {"interfaces": sorted(os.listdir("/sys/class/net"))}
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.settimeout(2)
try:
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"escaped")
    report["connect"] = "connected"
except OSError as exc:
    report["connect"] = f"failed: {exc}"
finally:
    sock.close()
with open(os.path.join(os.environ["SIMCODER_OUT"], "net.json"), "w") as f:
    json.dump(report, f)
print(report)
