"""Reading recordings: state reconstruction, queries and the ``escope`` CLI.

``from pytest_escope.replay import Recording`` is the Python API
(docs/json.md).  Nothing here imports pytest or the recorder's tracing
code; ``escope run`` reaches the recorder through a lazy import.
"""

from __future__ import annotations

from .errors import EscopeError
from .recording import Recording
from .state import JSON_SCHEMA_VERSION

__all__ = ["Recording", "EscopeError", "JSON_SCHEMA_VERSION"]
