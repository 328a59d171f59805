"""A pytest-xdist worker: it films its share of the tests into the
controller's run and leaves the run's start, end and summary to it."""

from __future__ import annotations

from typing import Any

import pytest

from .errors import EscopeUnavailable, unavailable
from .lifecycle import TestRecording
from .recorder.run_session import RunSession, is_storage_error
from .settings import Settings


class Worker(TestRecording):
    """Registered as ``escope-session`` in each xdist worker."""

    def __init__(self, config: pytest.Config, settings: Settings, workerinput: dict[str, Any]) -> None:
        run_id = workerinput.get("escope_run_id")
        if not run_id:
            raise EscopeUnavailable("")  # the controller could not start a run: it has warned
        worker = workerinput.get("workerid", "main")
        try:
            session = RunSession.join(settings.escope_dir, run_id)
            session.mark_process(worker, settings.attempt)
        except Exception as exc:
            if not is_storage_error(exc):
                raise
            raise unavailable(settings.escope_dir, exc) from None
        super().__init__(config, settings, session, worker=worker)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.recorder.forked:
            return  # the run index belongs to the parent
        self.session.close_recorder()
        self.session.close()
