"""Settings of one recording, independent of pytest."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .flusher import FLUSH_SECONDS

STRATEGIES = ("minimal", "balanced", "full_trace")

#: Value limits per strategy: (max text size, depth, items per container).
LIMITS = {
    "minimal": (500, 2, 20),
    "balanced": (1000, 3, 30),
    "full_trace": (4000, 5, 100),
}


def _default_redact() -> tuple[str, ...]:
    # imported when a recording is configured: the pytest plugin imports this
    # module for STRATEGIES in every session, recorded or not, and the value
    # renderer (with the schema and zoneinfo it needs) is a tenth of a second
    from .values import DEFAULT_REDACT
    return tuple(DEFAULT_REDACT)


@dataclass
class RecorderConfig:
    """What to record and where; built by the pytest plugin or ``escope run``."""

    rootdir: Path
    strategy: str = "balanced"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    redact: tuple[str, ...] = field(default_factory=_default_redact)
    max_value_size: int | None = None
    max_events: int | None = None
    #: events kept in memory before a chunk is spilled to disk
    spill_events: int = 100_000
    #: seconds after which a recording is spilled even if it is small
    spill_seconds: float = 2.0
    #: how often the flusher thread hands what is in memory to the writer,
    #: also while the test is blocked (recorder/flusher.py); 0: never
    flush_seconds: float = FLUSH_SECONDS
    backend: str | None = None  # "monitoring", "settrace" or None for the default
    extra_excluded_dirs: tuple[Path, ...] = field(default_factory=tuple)

    def limits(self) -> tuple[int, int, int]:
        size, depth, items = LIMITS[self.strategy]
        if self.max_value_size:
            size = self.max_value_size
        return size, depth, items


def pure_python_requested() -> bool:
    """``ESCOPE_PURE_PYTHON=1``: use none of the compiled ``_hotpath`` code
    (to rule it out when chasing a recorder problem, and in the tests that
    compare both)."""
    return os.environ.get("ESCOPE_PURE_PYTHON", "") not in ("", "0")
