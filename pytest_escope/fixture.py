"""The ``escope`` fixture: a test's handle on its own recording."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .recorder.session import Recording

#: the item's recording while it runs; None when the test is not filmed
RECORDING_KEY = pytest.StashKey["Recording | None"]()


class EscopeFixture:
    """What the ``escope`` fixture gives a test."""

    def __init__(self, recording: Recording | None, path: Path | None) -> None:
        self._recording = recording
        self.path = path
        self.enabled = recording is not None

    def checkpoint(self, label: str, **values: Any) -> None:
        """Add a custom event with ``label`` and ``values`` to the film."""
        rec = self._recording
        if rec is None or not rec.running:
            return
        try:
            rec.collector.checkpoint(str(label), values)
        except Exception:
            rec.collector.fault("checkpoint failed")


@pytest.fixture
def escope(request: pytest.FixtureRequest) -> EscopeFixture:
    """This test's recording: ``escope.checkpoint(label, **values)`` and ``escope.path``."""
    rec = request.node.stash.get(RECORDING_KEY, None)
    return EscopeFixture(rec, rec.path if rec is not None else None)
