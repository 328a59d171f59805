"""The pytest side of escope: the entry point pytest loads.

Thin glue over ``pytest_escope.recorder``: it reads the options
(``settings.py``), picks what this process does and registers it as
``escope-session``: the process that owns the run (``controller.py``), an
xdist worker (``worker.py``), or, under ``--escope-on-failure``, the
unrecorded session that reruns its failed tests (``on_failure.py``).  Each
test's recording is ``lifecycle.py``'s.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from . import settings as escope_settings
from .errors import EscopeUnavailable, EscopeWarning
from .fixture import EscopeFixture, escope  # noqa: F401  (the fixture is found on this module)

# The recorder (SQLite, the compiled callbacks, the value renderer) is
# imported when --escope is on: a run without it pays nothing for escope
# being installed.

__all__ = ["EscopeFixture", "EscopeWarning", "escope"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    escope_settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "escope(strategy=None, include=None, enabled=True): per-test escope settings",
    )
    mode = escope_settings.mode(config)
    workerinput = getattr(config, "workerinput", None)
    if mode == escope_settings.ON_FAILURE:
        reruns = escope_settings.reruns(config)
        if workerinput is None:  # the controller sees every worker's reports
            from .on_failure import OnFailurePlugin
            from .recorder.git import git_commit
            plugin = OnFailurePlugin(config, reruns, escope_settings.escope_dir(config),
                                     git_commit(Path(str(config.rootpath))))
            config.pluginmanager.register(plugin, "escope-on-failure")
        return
    if mode == escope_settings.OFF:
        return
    settings = escope_settings.Settings.from_config(config)
    session: Any
    try:
        if workerinput is not None:
            from .worker import Worker
            session = Worker(config, settings, workerinput)
        elif settings.rerun_of:
            from .controller import RerunController
            session = RerunController(config, settings)
        else:
            from .controller import Controller
            session = Controller(config, settings)
    except EscopeUnavailable as exc:
        if not exc.message:  # an xdist worker of a controller that records nothing
            return
        session = Unrecorded(exc.message)
    config.pluginmanager.register(session, "escope-session")


class Unrecorded:
    """Registered instead of a recording session when the escope dir cannot
    be written at the start: the session runs as without escope, after one
    warning.  A read-only or full disk is no reason to stop the tests."""

    def __init__(self, message: str) -> None:
        self.message = message

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"escope warning: {self.message}", yellow=True)
        else:
            warnings.warn(EscopeWarning(self.message), stacklevel=2)
