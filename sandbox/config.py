"""Limits of one sandboxed run, with units in the field names."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_IMAGE = "simulatorcoder-sandbox:latest"
_NAME_PREFIX_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_OWNER_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.@:-]*$")


class SandboxConfig(BaseModel):
    """Resource limits and naming for a sandbox; immutable, and unknown fields are rejected.

    Every limit must be positive; a bad value raises pydantic's ``ValidationError`` (a ``ValueError``)
    naming the field.  ``memory_mib`` is the cgroup limit without swap in Docker and RLIMIT_AS in the
    process sandbox; ``tmpfs_mib`` sizes ``/tmp`` and ``/dev/shm`` (Docker only); ``output_limit_mib``
    bounds the whole output folder and each file (RLIMIT_FSIZE); stdout and stderr are each cut to
    ``stream_limit_bytes``.

    Docker only: ``owner`` is the identity written on every container this sandbox creates (default
    ``None``: ``uid<uid>@<hostname>`` of the calling process, see ``DockerSandbox.owner``); with
    ``cleanup_stale`` a new sandbox removes that owner's stale containers, and never another owner's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = Field(default=DEFAULT_IMAGE, min_length=1)
    memory_mib: int = Field(default=512, ge=8)
    cpus: float = Field(default=1.0, gt=0, le=1024)
    pids_limit: int = Field(default=64, gt=0)
    timeout_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    tmpfs_mib: int = Field(default=64, gt=0)
    output_limit_mib: int = Field(default=64, gt=0)
    max_output_files: int = Field(default=10_000, gt=0)
    stream_limit_bytes: int = Field(default=64_000, ge=256)
    name_prefix: str = Field(default="simcoder-sbx-", min_length=1, max_length=40)
    owner: str | None = Field(default=None, min_length=1, max_length=128)
    cleanup_stale: bool = True

    @field_validator("name_prefix")
    @classmethod
    def _valid_container_name(cls, value: str) -> str:
        if not _NAME_PREFIX_RE.match(value):
            raise ValueError(
                f"name_prefix {value!r} is not a valid start of a Docker container name "
                "(letters, digits, '_', '.', '-'; must start with a letter or digit)"
            )
        return value

    @field_validator("owner")
    @classmethod
    def _valid_owner(cls, value: str | None) -> str | None:
        if value is not None and not _OWNER_RE.match(value):
            raise ValueError(
                f"owner {value!r} is not a valid owner identity "
                "(letters, digits, '_', '.', '@', ':', '-'; must start with a letter or digit)"
            )
        return value

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 1024 * 1024

    @property
    def output_limit_bytes(self) -> int:
        return self.output_limit_mib * 1024 * 1024
