"""A well-behaved candidate: reads optional params, writes a small result."""

import json
import os
import sys
from pathlib import Path

inputs = os.environ["SIMCODER_INPUTS"]
params_path = os.path.join(inputs, "params.json")
params = json.loads(Path(params_path).read_text()) if os.path.exists(params_path) else {}
code = os.environ["SIMCODER_CODE"]
result = {
    "ok": True,
    "params": params,
    "cwd": os.getcwd(),
    "uid": os.getuid(),
    "env": {k: v for k, v in os.environ.items() if k.startswith("SIMCODER_")},
    "code_listing": sorted(os.listdir(code)),
}
with open(os.path.join(os.environ["SIMCODER_OUT"], "result.json"), "w") as f:
    json.dump(result, f)
print("trivial ok")
print("a line on stderr", file=sys.stderr)
