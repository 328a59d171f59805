"""``escope dap`` driven by a real DAP client: the DebugClient of the npm
package ``@vscode/debugadapter-testsupport`` under node, through the
scenario of tests/dap_client/scenario.js, on a real recording.

The package is installed by ``.ci/run`` (``npm install --prefix .ci/.node``)
and found through ``$ESCOPE_NODE_MODULES``; the test never installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from _dap import escope_exe, marked_lines, record_suite
from conftest import Project, clean_env

HERE = Path(__file__).parent
ROOT = HERE.parent
PACKAGE = "@vscode/debugadapter-testsupport"


def node_modules() -> Path:
    return Path(os.environ.get("ESCOPE_NODE_MODULES") or ROOT / ".ci" / ".node" / "node_modules")


def _skip_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (the DAP client test runs the npm DebugClient under node)"
    if not (node_modules() / PACKAGE / "package.json").is_file():
        return (f"{PACKAGE} is not installed in {node_modules()} "
                f"(run: npm install --no-audit --no-fund --prefix .ci/.node {PACKAGE})")
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def test_vscode_debug_client_scenario(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    recording = record_suite(project)
    config = {"recording": str(recording), "cwd": str(project.path),
              "test_file": str(project.path / "test_basket.py"), "helper_file": str(project.path / "helper_mod.py"),
              "lines": marked_lines()}
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    env = clean_env(NODE_PATH=str(node_modules()))
    proc = subprocess.run(["node", str(HERE / "dap_client" / "scenario.js"), escope_exe(), str(config_path)],
                          cwd=project.path, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    lines = proc.stdout.splitlines()
    assert lines[-1] == "scenario passed", out
    for step in ("ok launch stopped at the failure", "ok next x3:", "ok reverseContinue stopped at the breakpoint",
                 "ok conditional breakpoint p == 6", "ok hitCondition 2", "ok embedded source of the deleted",
                 "ok goto line", "ok raised exception: ValueError", "terminated", "ok disconnect"):
        assert any(step in line for line in lines), (step, out)
