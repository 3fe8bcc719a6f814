"""Tries to write outside its output folder; reports which writes succeeded."""

import json
import os
from pathlib import Path

name = Path(os.path.join(os.environ["SIMCODER_INPUTS"], "probe_name.txt")).read_text().strip()
targets = [
    os.path.join(os.environ["SIMCODER_CANDIDATE"], name),
    os.path.join(os.environ["SIMCODER_INPUTS"], name),
    os.path.join(os.environ["SIMCODER_CODE"], name),
    os.path.join("/", name),
    os.path.join("/etc", name),
    os.path.join("/sandbox", name),
    os.path.join("/var/tmp", name),
    os.path.join("/tmp", name),
]
report = {}
for path in targets:
    try:
        with open(path, "w") as f:
            f.write("escaped")
        report[path] = "written"
    except OSError as exc:
        report[path] = f"refused: {exc.strerror}"
with open(os.path.join(os.environ["SIMCODER_OUT"], "report.json"), "w") as f:
    json.dump(report, f)
print(json.dumps(report))
