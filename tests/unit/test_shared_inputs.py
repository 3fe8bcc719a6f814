"""Every SCALE-Sim config and topology file shipped with SCALE-Sim reads cleanly or fails with one clear line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reference_sim import InputError, read_config, read_topology, simulate
from tests.conftest import SCALESIM_DATA

TOPOLOGIES = sorted(str(p.relative_to(SCALESIM_DATA / "topologies"))
                    for p in (SCALESIM_DATA / "topologies").rglob("*.csv")) or ["<no topologies>"]
CONFIGS = sorted(p.name for p in (SCALESIM_DATA / "configs").glob("*.cfg")) or ["<no configs>"]
KNOWN_BAD = {
    "conv_nets/UNet_maestro.csv": "fields are not separated by commas",
    "rnn_eval/LSTM_template.csv": "not an integer",
    "CSV/LSTM.csv": "not an integer",
    "CSV/MLPERF.csv": "Filter Width: missing value",
    "mlperf/MLPERF.csv": "Filter Width: missing value",
    "mlperf/Sentimental_seqLSTM.csv": "Filter Width: missing value",
}


@pytest.mark.parametrize("config", CONFIGS)
def test_shipped_configs_read(scalesim_data: Path, config: str) -> None:
    hardware = read_config(scalesim_data / "configs" / config).hardware
    assert hardware.array_rows > 0 and hardware.dataflow in ("os", "ws", "is")


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_shipped_topologies_read_and_run(scalesim_data: Path, topology: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    path = scalesim_data / "topologies" / topology
    kind = "gemm" if topology.startswith("GEMM_mnk/") else "conv"
    caplog.set_level(logging.WARNING)
    if topology in KNOWN_BAD:
        with pytest.raises(InputError) as error:
            read_topology(path, kind)
        assert KNOWN_BAD[topology] in str(error.value)
        assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
        return
    layers = read_topology(path, kind)
    assert layers
    assert all(not record.message.startswith("Traceback") for record in caplog.records)
    smallest = min(layers, key=lambda layer: layer.macs)
    if smallest.macs < 10**9:
        hardware = read_config(scalesim_data / "configs" / "scale.cfg").hardware
        result = simulate([smallest], hardware)[0]
        assert result.total_cycles > 0 and result.dram_accesses["ofmap"] > 0
