"""A small shop library: the subject of the oracle test (its ``suite_*.py``
files are run by ``tests/test_recorder_oracle.py``, never collected by the
project's own session)."""
