"""escope's pytest options and ini keys, and the settings they make.

Every option has an ini key or an environment variable beside it; the
command line wins, then ``$PYTEST_ESCOPE``, then the ini file.  A bad value
is a ``pytest.UsageError`` (one line, exit status 4) before any test runs.
Nothing here imports the recorder's SQLite or tracing code: a session that
records nothing pays for parsing its options only.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .recorder.config import STRATEGIES, RecorderConfig

RECORD = "record"
ON_FAILURE = "on-failure"
OFF = "off"

_TRUE = ("1", "true", "yes", "y", "t", "on")
_FALSE = ("", "0", "false", "no", "n", "f", "off")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("escope", "escope: record tests for time-travel replay")
    group.addoption("--escope", action="store_true", default=None,
                    help="record every test into .escope/ (also: ini escope=true, env PYTEST_ESCOPE=1)")
    group.addoption("--escope-on-failure", action="store_true", default=None,
                    help="run unrecorded, then record each failed test again at the end "
                         "(also: ini escope=on-failure, env PYTEST_ESCOPE=on-failure)")
    group.addoption("--escope-reruns", type=int, default=None, metavar="N",
                    help="with --escope-on-failure: recorded runs of a failed test that must pass "
                         "before it counts as not reproduced (default 3)")
    # what a recorded rerun of --escope-on-failure is told by its session (pytest_escope/reruns.py)
    group.addoption("--escope-rerun-run", default=None, help=argparse.SUPPRESS)
    group.addoption("--escope-rerun-attempt", type=int, default=0, help=argparse.SUPPRESS)
    group.addoption("--escope-dir", default=None, metavar="DIR", help="where runs are stored (default: <rootdir>/.escope)")
    group.addoption("--escope-strategy", default=None, choices=STRATEGIES,
                    help="what to record: minimal, balanced (default), full_trace")
    group.addoption("--escope-include", action="append", default=None, metavar="GLOB",
                    help="also record files/modules matching GLOB (repeatable)")
    group.addoption("--escope-exclude", action="append", default=None, metavar="GLOB",
                    help="never record files/modules matching GLOB (repeatable)")
    group.addoption("--escope-redact", action="append", default=None, metavar="NAME",
                    help="extra name pattern whose values are stored as <redacted> (repeatable)")
    group.addoption("--escope-keep", default=None, choices=("failed", "all"),
                    help="keep recordings of failed tests only (default) or all")
    group.addoption("--escope-max-events", type=int, default=None, metavar="N",
                    help="keep at most the newest N events of one test")
    group.addoption("--escope-max-value-size", type=int, default=None, metavar="CHARS",
                    help="longest text kept for one value")
    group.addoption("--escope-max-bytes", default=None, metavar="SIZE",
                    help="stop recording more tests once the run dir holds SIZE (e.g. 500M)")
    group.addoption("--escope-backend", default=None, choices=("monitoring", "settrace"),
                    help="tracing backend (default: monitoring on 3.12+, settrace on 3.11)")
    group.addoption("--escope-pack", default=None, metavar="PATH",
                    help="after the run, pack failed tests' recordings into PATH")
    parser.addini("escope", "record tests with escope: true, false or on-failure", default="")
    parser.addini("escope_reruns", "recorded reruns of a failed test under on-failure (default 3)", default="")
    parser.addini("escope_dir", "escope directory", default="")
    parser.addini("escope_strategy", "minimal, balanced or full_trace", default="")
    parser.addini("escope_include", "globs of files/modules to record", type="args", default=[])
    parser.addini("escope_exclude", "globs of files/modules never to record", type="args", default=[])
    parser.addini("escope_redact", "extra secret name patterns", type="args", default=[])
    parser.addini("escope_keep", "failed or all", default="")
    parser.addini("escope_max_events", "newest events kept per test", default="")


def parse_size(text: str) -> int:
    """``500M``, ``2GB``, ``4096``: a size in bytes."""
    text = text.strip().upper()
    mult = 1
    for suffix, m in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if text.endswith(suffix + "B"):
            text = text[:-2]
            mult = m
            break
        if text.endswith(suffix):
            text = text[:-1]
            mult = m
            break
    return int(float(text) * mult)


def option(config: pytest.Config, name: str, ini: str) -> Any:
    """The command line's value of an option, else its ini key's."""
    value = config.getoption(name)
    if value is None or value == []:
        value = config.getini(ini) or None
    return value


def mode(config: pytest.Config) -> str:
    """``record``, ``on-failure`` or ``off``: the command line, then
    ``$PYTEST_ESCOPE``, then the ini file's ``escope``."""
    record, on_failure = config.getoption("escope"), config.getoption("escope_on_failure")
    if config.getoption("escope_rerun_run"):
        return RECORD  # a recorded rerun, whatever the session's own settings say
    if record and on_failure:
        raise pytest.UsageError("escope: --escope records every test and --escope-on-failure only the failed "
                                "ones; pass one of them")
    if record:
        return RECORD
    if on_failure:
        return ON_FAILURE
    env = os.environ.get("PYTEST_ESCOPE", "").strip().lower()
    if env == ON_FAILURE:
        return ON_FAILURE
    if env in _TRUE:
        return RECORD
    ini = str(config.getini("escope")).strip().lower()
    if ini == ON_FAILURE:
        return ON_FAILURE
    if ini in _TRUE:
        return RECORD
    if ini in _FALSE:
        return OFF
    raise pytest.UsageError(f"escope: the ini option escope must be true, false or on-failure, "
                            f"not {config.getini('escope')!r}")


def reruns(config: pytest.Config) -> int:
    """How many recorded runs of a failed test must pass under ``--escope-on-failure``."""
    value = option(config, "escope_reruns", "escope_reruns")
    try:
        count = int(value) if value not in (None, "") else 3
    except ValueError:
        raise pytest.UsageError(f"escope: escope_reruns must be a number, not {value!r}") from None
    if count < 1:
        raise pytest.UsageError("escope: --escope-reruns must be at least 1")
    return count


def escope_dir(config: pytest.Config) -> Path:
    """``--escope-dir`` (relative to the rootdir), else ``<rootdir>/.escope``."""
    rootdir = Path(str(config.rootpath))
    dir_opt = option(config, "escope_dir", "escope_dir")
    path = Path(dir_opt) if dir_opt else rootdir / ".escope"
    return path if path.is_absolute() else rootdir / path


@dataclass(frozen=True)
class Settings:
    """What a recording session was asked for, checked."""

    escope_dir: Path
    recorder: RecorderConfig
    #: ``failed`` or ``all``: which recordings are kept
    keep: str
    #: stop recording more tests once the run's recordings add up to this
    max_bytes: int | None
    #: a recorded rerun of ``--escope-on-failure`` writes attempt N into its
    #: session's run (pytest_escope/reruns.py): the run's id, else None
    rerun_of: str | None
    attempt: int

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        rootdir = Path(str(config.rootpath))
        where = escope_dir(config)
        strategy = option(config, "escope_strategy", "escope_strategy") or "balanced"
        if strategy not in STRATEGIES:
            raise pytest.UsageError(f"escope: unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        keep = option(config, "escope_keep", "escope_keep") or "failed"
        if keep not in ("failed", "all"):
            raise pytest.UsageError(f"escope: --escope-keep must be 'failed' or 'all', not {keep!r}")
        rerun_of: str | None = config.getoption("escope_rerun_run")
        attempt: int = (config.getoption("escope_rerun_attempt") or 0) if rerun_of else 0
        if rerun_of:
            keep = "all"  # a rerun's passing recordings are what escope diff compares with
        max_events = option(config, "escope_max_events", "escope_max_events")
        try:
            max_events = int(max_events) if max_events not in (None, "") else None
        except ValueError:
            raise pytest.UsageError(f"escope: escope_max_events must be a number, not {max_events!r}") from None
        if max_events is not None and max_events < 1:
            raise pytest.UsageError("escope: --escope-max-events must be at least 1")
        max_bytes_text = config.getoption("escope_max_bytes")
        try:
            max_bytes = parse_size(max_bytes_text) if max_bytes_text else None
        except ValueError:
            raise pytest.UsageError(f"escope: --escope-max-bytes takes a size like 500M, "
                                    f"not {max_bytes_text!r}") from None
        # checked first, imported now: the backend's module and the renderer's patterns
        from .recorder.session import default_backend
        from .recorder.values import DEFAULT_REDACT

        redact = tuple(DEFAULT_REDACT) + tuple(option(config, "escope_redact", "escope_redact") or ())
        recorder = RecorderConfig(
            rootdir=rootdir,
            strategy=strategy,
            include=tuple(option(config, "escope_include", "escope_include") or ()),
            exclude=tuple(option(config, "escope_exclude", "escope_exclude") or ()),
            redact=redact,
            max_value_size=config.getoption("escope_max_value_size"),
            max_events=max_events,
            backend=config.getoption("escope_backend") or default_backend(),
            extra_excluded_dirs=(where,),
        )
        return cls(escope_dir=where, recorder=recorder, keep=keep, max_bytes=max_bytes, rerun_of=rerun_of,
                   attempt=attempt)
