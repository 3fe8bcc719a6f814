"""Tries to read a host file that is not mounted, and /etc/shadow."""

import json
import os
from pathlib import Path

secret_path = Path(os.path.join(os.environ["SIMCODER_INPUTS"], "secret_path.txt")).read_text().strip()
report = {}
for path in (secret_path, "/etc/shadow"):
    try:
        with open(path) as f:
            report[path] = "read: " + f.read()
    except OSError as exc:
        report[path] = f"refused: {type(exc).__name__}: {exc.strerror}"
report["root_listing"] = sorted(os.listdir("/"))
with open(os.path.join(os.environ["SIMCODER_OUT"], "report.json"), "w") as f:
    json.dump(report, f)
print(json.dumps(report))
