"""The ports the test Ray cluster gives its nodes (``tests/ray_cluster.py``)."""

from __future__ import annotations

from tests.ray_cluster import _ports


def test_every_node_port_is_distinct_the_head_s_gcs_port_among_them() -> None:
    for head in (True, False):
        for _ in range(20):
            args = _ports(head=head)
            values = dict(zip(args[::2], (int(v) for v in args[1::2]), strict=True))
            assert ("--port" in values) is head
            named = [port for flag, port in values.items() if not flag.endswith("-worker-port")]
            assert len(set(named)) == len(named), args
            if "--min-worker-port" in values:
                low, high = values["--min-worker-port"], values["--max-worker-port"]
                assert high - low == 50 and not any(low <= port <= high for port in named), args
