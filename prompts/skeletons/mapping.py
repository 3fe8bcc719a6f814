"""Reference mapping module: SCALE-Sim v2's operand matrices, folds and ideal compute figures.

``map_layer(layer, hardware)`` returns a :class:`LayerMapping`.  Per dataflow it chooses which
operand axes go to array rows (``Sr``), array columns (``Sc``) and time (``T``), cuts them into
folds (column fold outer, row fold inner) and says how each operand's fold block is laid out over
array ports.  No skew here: the network module owns fill and drain.
"""

from __future__ import annotations

import math

import numpy as np

from .contract import (
    AffineOperand,
    Hardware,
    Layer,
    LayerMapping,
    OperandName,
    OperandTiling,
    WindowOperand,
)


def _tilings(hardware: Hardware) -> dict[OperandName, OperandTiling]:
    """Per operand: which fold index selects its rows and columns, its lane count, and prefetch order."""
    ...


def map_layer(layer: Layer, hardware: Hardware) -> LayerMapping:
    """Map one layer onto the array for the hardware's dataflow."""
    ...
