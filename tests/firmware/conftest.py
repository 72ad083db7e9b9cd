"""firmware/ modules import each other by bare name (`import ticks`, `from level import
Delayed`), as they sit at the root of a node's flash: put firmware/ on sys.path for them.
protocol/ is importable from the repository root, as on the node."""

import sys
from pathlib import Path

FIRMWARE = str(Path(__file__).resolve().parents[2] / "firmware")
if FIRMWARE not in sys.path:
    sys.path.insert(0, FIRMWARE)
