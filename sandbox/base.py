"""The sandbox interface: what a run returns, and what every sandbox implementation provides.

Inside a sandbox the command sees four folders, each named by an environment variable.  In the
Docker sandbox they are mounted at the fixed paths below; in the process sandbox the variables point
at the real host folders, so commands should use the variables rather than hard-coded paths.  The
code folder is empty unless the sandbox was given a ``code_dir``: no repository code is visible to
the command by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

from reference_sim.errors import SimCoderError

CANDIDATE_MOUNT = "/sandbox/candidate"
INPUTS_MOUNT = "/sandbox/inputs"
CODE_MOUNT = "/sandbox/code"
OUT_MOUNT = "/sandbox/out"

ENV_CANDIDATE = "SIMCODER_CANDIDATE"
ENV_INPUTS = "SIMCODER_INPUTS"
ENV_CODE = "SIMCODER_CODE"
ENV_OUT = "SIMCODER_OUT"

BUILD_HINT = "bash .ci/provision-docker.sh (offline) or docker build -t simulatorcoder-sandbox:latest ."


class Outcome(str, Enum):
    """How a run ended.  A sandbox returns every value except ``WRONG_RESULT`` and ``FORBIDDEN``.

    Those two are set by the verifier.
    """

    PASSED = "passed"
    WRONG_RESULT = "wrong_result"
    TIMED_OUT = "timed_out"
    OUT_OF_MEMORY = "out_of_memory"
    CRASHED = "crashed"
    BAD_OUTPUT = "bad_output"
    FORBIDDEN = "forbidden"
    """Set by the verifier: the candidate uses what its rules refuse (an import, a name, a file)."""


@dataclass(frozen=True)
class RunResult:
    """The result of one sandboxed command.

    ``exit_code`` is ``None`` when the sandbox killed the command (timeout, output too big); a command
    killed by signal N reports ``128 + N`` in both sandboxes.  ``stdout``/``stderr`` are cut to the
    configured bound (head and tail kept).  ``output_files`` are the regular files in ``output_dir``,
    relative POSIX paths, sorted.  ``message`` is one human sentence explaining ``outcome``.
    """

    outcome: Outcome
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    output_dir: Path
    output_files: tuple[str, ...]
    message: str

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


class SandboxError(SimCoderError, RuntimeError):
    """A sandbox could not run a command for a reason that is not the candidate's fault."""


class SandboxUnavailable(SandboxError):  # noqa: N818 (names fixed by the interface)
    """The sandbox cannot be used at all; the message is one line saying what to do."""


class EngineUnavailable(SandboxUnavailable):
    """No Docker engine is reachable (``make_sandbox(kind="auto")`` falls back to processes)."""


class ImageMissing(SandboxUnavailable):
    """The engine is reachable but the sandbox image is not built."""


@runtime_checkable
class Sandbox(Protocol):
    """Runs one command over a candidate folder with bounded time, memory, processes and output."""

    name: str

    def run(
        self,
        candidate_dir: Path,
        inputs_dir: Path,
        output_dir: Path,
        command: Sequence[str],
        *,
        timeout_s: float | None = None,
    ) -> RunResult:
        """Run ``command`` with cwd = the output folder; ``timeout_s`` overrides the configured one."""
        ...
