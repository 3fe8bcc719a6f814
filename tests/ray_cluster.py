"""A Ray cluster of a head and worker nodes on 127.0.0.1, for tests and the executor benchmark.

Each node is ``ray start --block`` in its own process group, so it is stopped (or killed, to
simulate a lost machine) by its PID alone.  Every port Ray would pick is chosen free at run time;
the dashboard and usage stats are off; all of Ray's files go under ``temp_dir``.  Every connection
made to the cluster is to 127.0.0.1, but Ray's own servers listen on all interfaces (Ray has no
setting to bind them to one address).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from tests.ports import free_ports

START_TIMEOUT_S = 90.0


def ray_binary() -> str | None:
    """The ``ray`` command beside this interpreter (the venv's), else on PATH; ``None`` without Ray."""
    beside = Path(sys.executable).with_name("ray")
    if beside.is_file():
        return str(beside)
    return shutil.which("ray")


def _ports(head: bool) -> list[str]:
    """Ray's ports for one node (for the head, its GCS ``--port`` too), all distinct, and a worker range of
    51 ports that holds none of them."""
    names = ["--node-manager-port", "--object-manager-port", "--metrics-export-port", "--runtime-env-agent-port",
             "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port"]
    names += ["--port", "--ray-client-server-port", "--dashboard-port"] if head else []
    *ports, low = free_ports(len(names) + 1)
    args = [arg for name, port in zip(names, ports) for arg in (name, str(port))]
    if low + 50 < 65536 and not any(low <= port <= low + 50 for port in ports):
        args += ["--min-worker-port", str(low), "--max-worker-port", str(low + 50)]
    return args


class RayNode:
    """One ``ray start --block`` process group."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def holds_connection(self, local_port: int) -> bool:
        """Whether a process of this node (``ray start`` or any descendant: the raylet, its Ray workers) holds
        the TCP socket whose local port is ``local_port`` (e.g. a request's client port seen by a server)."""
        inodes = _socket_inodes(local_port)
        if not inodes:
            return False
        for pid in _descendants(self.proc.pid):
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) in inodes:
                            return True
        return False

    def kill(self) -> None:
        """SIGKILL the node's whole process group (raylet, its workers, ``ray start`` itself)."""
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """The same as :meth:`kill`: a graceful ``ray stop`` drains for 30 s, and nothing here needs draining."""
        self.kill()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


def _socket_inodes(local_port: int) -> set[str]:
    """``socket:[inode]`` of every TCP socket on this machine whose local port is ``local_port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                    found.add(f"socket:[{fields[9]}]")
    return found


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (by parent PID, read from ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class LoopbackCluster:
    """``with LoopbackCluster(tmp, workers=1) as cluster:`` a head and ``workers`` worker nodes; ``cluster.address``."""

    def __init__(self, temp_dir: Path, *, workers: int = 1, cpus_per_node: int = 1,
                 env: dict[str, str] | None = None) -> None:
        binary = ray_binary()
        if binary is None:
            raise RuntimeError("Ray is not installed: pip install -e '.[ray]'")
        self.binary = binary
        self.temp_dir = temp_dir
        self.workers_wanted = workers
        self.cpus = cpus_per_node
        self.env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
        self.head_ports = _ports(head=True)
        self.port = int(self.head_ports[self.head_ports.index("--port") + 1])
        self.address = f"127.0.0.1:{self.port}"
        self.head: RayNode | None = None
        self.workers: list[RayNode] = []

    def _common(self) -> list[str]:
        return ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus), "--disable-usage-stats"]

    def __enter__(self) -> LoopbackCluster:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.head = RayNode([self.binary, "start", "--head", "--temp-dir", str(self.temp_dir),
                                 "--include-dashboard=false", *self._common(), *self.head_ports],
                                self.temp_dir / "head.log", self.env)
            self._wait_for(1)
            for n in range(self.workers_wanted):
                self.workers.append(RayNode([self.binary, "start", "--address", self.address, *self._common(),
                                             *_ports(head=False)], self.temp_dir / f"worker-{n}.log", self.env))
            self._wait_for(1 + self.workers_wanted)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def add_worker(self) -> RayNode:
        """One more worker node (e.g. after one was killed); returns once the cluster counts it."""
        before = self.alive_nodes()
        node = RayNode([self.binary, "start", "--address", self.address, *self._common(), *_ports(head=False)],
                       self.temp_dir / f"worker-{len(self.workers)}.log", self.env)
        self.workers.append(node)
        self._wait_for(before + 1)
        return node

    def stop(self) -> None:
        """Kill every node, then any Ray worker process of this cluster still running (they start sessions of
        their own, so they are found by the cluster's temp folder in their command line, and killed by PID)."""
        for node in [*self.workers, *([self.head] if self.head else [])]:
            node.stop()
        for pid in self._leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _leftovers(self) -> list[int]:
        found = []
        marker = str(self.temp_dir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def alive_nodes(self) -> int:
        """Nodes the cluster reports alive (``ray status``; 0 while the head is not up)."""
        done = subprocess.run([self.binary, "status", "--address", self.address], capture_output=True, text=True,
                              env=self.env, timeout=60)
        if done.returncode != 0:
            return 0
        active = done.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in done.stdout else ""
        return sum(1 for line in active.splitlines() if line.strip().startswith("1 node_"))

    def _wait_for(self, nodes: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for node in [*self.workers[-1:], *([self.head] if self.head else [])]:
                if node.proc.poll() is not None:
                    raise RuntimeError(f"ray start exited ({node.proc.returncode}): "
                                       f"{node.log.read_text(errors='replace')[-2000:]}")
            if self.alive_nodes() >= nodes:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the Ray cluster did not reach {nodes} nodes in {START_TIMEOUT_S:.0f} s")
