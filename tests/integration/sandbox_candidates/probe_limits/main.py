"""Reports the limits it runs under (cgroups, rlimits, credentials, mounts, network)."""

import json
import os
import resource


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


status = dict(line.split(":", 1) for line in read("/proc/self/status").splitlines() if ":" in line)
mounts = {}
for line in read("/proc/mounts").splitlines():
    _, target, fstype, options = line.split()[:4]
    mounts[target] = {"type": fstype, "options": options.split(",")}
report = {
    "uid": os.getuid(),
    "gid": os.getgid(),
    "cap_eff": status["CapEff"].strip(),
    "cap_bnd": status["CapBnd"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "seccomp": status["Seccomp"].strip(),
    "memory_limit": read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "memsw_limit": read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
    "memory_max_v2": read("/sys/fs/cgroup/memory.max"),
    "pids_max": read("/sys/fs/cgroup/pids/pids.max"),
    "pids_max_v2": read("/sys/fs/cgroup/pids.max"),
    "cpu_quota": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    "cpu_period": read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    "cpu_max_v2": read("/sys/fs/cgroup/cpu.max"),
    "rlimit_fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
    "rlimit_core": resource.getrlimit(resource.RLIMIT_CORE)[0],
    "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0],
    "rlimit_nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
    "umask": oct(os.umask(0o022)),
    "pid1": read("/proc/1/cmdline").replace("\0", " ").strip(),
    "interfaces": sorted(os.listdir("/sys/class/net")),
    "mounts": {k: v for k, v in mounts.items() if k in ("/", "/tmp", "/dev/shm") or k.startswith("/sandbox")},
    "numpy": __import__("numpy").__version__,
}
with open(os.path.join(os.environ["SIMCODER_OUT"], "limits.json"), "w") as f:
    json.dump(report, f, indent=1)
print(json.dumps(report))
