# Sandbox image in which candidate simulators run (see docs/sandbox.md).
#
# With a registry:   docker build -t simulatorcoder-sandbox:latest .
# Offline:           bash .ci/provision-docker.sh
#                    (imports a debootstrapped bookworm rootfs with python3 + python3-numpy as
#                    simulatorcoder-base:bookworm and builds this file with --build-arg BASE=...)
#
# Nothing is copied in: the candidate and its inputs are bind-mounted read-only at run time by
# sandbox.docker_sandbox.DockerSandbox.  The verifier (judge/executors.py) puts its harness
# (judge/harness/) and the contract into the inputs; nothing of the repository (and so nothing of the
# reference simulator) is in the image.
ARG BASE=python:3.11-slim
FROM ${BASE}
LABEL org.simulatorcoder.role="sandbox"

# numpy is the only third-party package; the offline base already has it (no network needed then).
RUN python3 -c "import numpy" 2>/dev/null \
    || python3 -m pip install --no-cache-dir "numpy>=1.24"

# Unprivileged user the candidates run as (DockerSandbox also passes --user 10001:10001).
RUN (getent group 10001 >/dev/null || groupadd --gid 10001 sandbox) \
    && (getent passwd 10001 >/dev/null \
        || useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
           --shell /usr/sbin/nologin sandbox) \
    && mkdir -p /sandbox/candidate /sandbox/inputs /sandbox/code /sandbox/out \
    && chown 10001:10001 /sandbox/out

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIMCODER_CANDIDATE=/sandbox/candidate \
    SIMCODER_INPUTS=/sandbox/inputs \
    SIMCODER_CODE=/sandbox/code \
    SIMCODER_OUT=/sandbox/out

WORKDIR /sandbox/out
USER 10001:10001
CMD ["python3", "-c", "import numpy; print('simulatorcoder sandbox: numpy', numpy.__version__)"]
