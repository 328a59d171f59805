"""Hooks other plugins implement to extend escope.

Added with ``pytest_addhooks``; implement them in a conftest.py or plugin.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_escope_render(value: Any) -> str | None:
    """Return the text to record for ``value``, or None to let escope render it.

    Called for every non-scalar value escope captures while recording, so it
    must be fast and must not change ``value``. escope only calls it when at
    least one plugin implements it.
    """


def pytest_escope_recording_started(item: pytest.Item, escope: Any) -> None:
    """A test's recording starts; ``escope.checkpoint(label, **values)`` adds
    custom events to it (for example the state of an external service)."""


def pytest_escope_recording_finished(item: pytest.Item, path: str | None, outcome: str, events: int) -> None:
    """A test's recording is closed. ``path`` is None when it was not kept
    (a passing test under ``--escope-keep=failed``)."""
