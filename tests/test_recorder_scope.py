"""Scope: escope never films itself, and nothing else near it is excluded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest_escope
from pytest_escope.recorder.config import RecorderConfig
from pytest_escope.recorder.nodes import NodeIndexCache
from pytest_escope.recorder.scope import Scope, _own_package_dirs

ROOT = Path(__file__).resolve().parent.parent


def test_own_code_is_out_of_scope_but_its_neighbours_are_not() -> None:
    dirs = _own_package_dirs()
    assert os.path.realpath(os.path.dirname(pytest_escope.__file__)) in dirs
    assert len(dirs) == 3  # pytest_escope, its recorder and its replay
    # an editable install maps the packages into this checkout: the demo
    # project beside them must still be filmed
    scope = Scope(RecorderConfig(rootdir=ROOT), NodeIndexCache(None))
    assert scope.wants_path(str(ROOT / "demo" / "shop" / "invoice.py"))
    import pytest_escope.recorder.collector as collector
    assert not scope.wants_path(collector.__file__)
    assert not scope.wants_path(pytest_escope.__file__)
