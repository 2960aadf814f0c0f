"""The simulator's tests replay slices of the shared traces kept beside them (``data/``), so
they do not depend on where the full traces live."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["TOKENMILL_TRACE_DIR"] = str(Path(__file__).parent / "data")
