# The demo suite's rootdir: makes `shop` importable from tests/.
