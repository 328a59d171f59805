"""``escope dap`` at the protocol level, on a real recording: malformed
messages and bad references get an error response and the server goes on
serving; the motions, breakpoints and scopes the node scenario does not
reach; TCP mode; bad command lines."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

import pytest

from _dap import DapPeer, frame, marked_lines, record_suite
from conftest import Project, clean_env

LINES = marked_lines()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    project = Project(tmp_path_factory.mktemp("dap") / "proj")
    return project, record_suite(project)


@pytest.fixture
def peer(recorded: tuple[Project, Path]) -> Iterator[DapPeer]:
    p = DapPeer(recorded[0].path)
    yield p
    assert p.close() == 0, p.stderr()
    assert "Traceback" not in p.stderr()


def _top(peer: DapPeer, thread: int) -> dict:
    return peer.ok("stackTrace", threadId=thread)["stackFrames"][0]


def _locals(peer: DapPeer, frame_id: int) -> dict[str, dict]:
    scopes = peer.ok("scopes", frameId=frame_id)["scopes"]
    variables = peer.ok("variables", variablesReference=scopes[0]["variablesReference"])["variables"]
    return {v["name"]: v for v in variables}


def _alive(peer: DapPeer) -> None:
    """The server still answers."""
    assert peer.ok("threads") is not None


# -- malformed input ------------------------------------------------------------------

def test_bad_content_length_is_an_error_and_the_server_resynchronises(peer: DapPeer) -> None:
    peer.raw(b"Content-Length: twelve\r\n\r\n{\"seq\": 1}")
    bad = peer.response()
    assert bad["success"] is False and bad["request_seq"] == 0
    assert "Content-Length" in bad["message"] and "twelve" in bad["message"]
    body = peer.ok("initialize", adapterID="escope")
    assert body["supportsStepBack"] is True


def test_oversized_length_and_non_json_bodies_are_errors(peer: DapPeer) -> None:
    peer.raw(b"Content-Length: 99999999999\r\n\r\n")
    assert "over the" in peer.response()["message"]
    peer.raw(b"Content-Length: 5\r\n\r\nhello")
    assert "not JSON" in peer.response()["message"]
    peer.raw(frame([1, 2, 3]))  # type: ignore[arg-type]
    assert "not a JSON object" in peer.response()["message"]
    peer.raw(frame({"seq": 7, "type": "event", "event": "x"}))
    bad = peer.response()
    assert bad["request_seq"] == 7 and "only requests" in bad["message"]
    peer.raw(b"Content-Type: text/plain\r\n\r\n")
    assert "without a Content-Length" in peer.response()["message"]
    _alive(peer)


def test_unknown_command_gets_an_error_response(peer: DapPeer) -> None:
    r = peer.request("frobnicate", x=1)
    assert r["success"] is False and r["command"] == "frobnicate"
    assert "does not support the request 'frobnicate'" in r["message"]
    assert r["body"]["error"]["format"] == r["message"]
    _alive(peer)


def test_requests_before_launch_and_a_bad_launch_are_errors(peer: DapPeer, recorded: tuple[Project, Path]) -> None:
    r = peer.request("stackTrace", threadId=1)
    assert r["success"] is False and "before launch" in r["message"]
    peer.ok("initialize")
    r = peer.request("launch", test="no_such_test_anywhere")
    assert r["success"] is False and "no_such_test_anywhere" in r["message"]
    r = peer.request("launch", recording=str(recorded[1]), stopAt="middle")
    assert r["success"] is False and "stopAt" in r["message"]
    stopped = peer.launch(recording=str(recorded[1]))  # the session is still usable
    assert stopped["body"]["reason"] == "exception"


def test_out_of_range_references_are_errors(peer: DapPeer, recorded: tuple[Project, Path]) -> None:
    thread = peer.launch(recording=str(recorded[1]))["body"]["threadId"]
    top = _top(peer, thread)
    for command, args in (("scopes", {"frameId": 999}), ("scopes", {"frameId": -1}),
                          ("scopes", {"frameId": "one"}), ("variables", {"variablesReference": 999}),
                          ("variables", {"variablesReference": None}), ("stackTrace", {"threadId": 424242}),
                          ("stackTrace", {"threadId": thread, "startFrame": "x"}),
                          ("evaluate", {"expression": "t", "frameId": 31337}),
                          ("source", {"sourceReference": 5000}), ("goto", {"targetId": 10 ** 9}),
                          ("exceptionInfo", {"threadId": 424242})):
        r = peer.request(command, **args)
        assert r["success"] is False, (command, args, r)
        assert r["message"], r
    # a reference from before a stop is no longer valid after it
    scopes = peer.ok("scopes", frameId=top["id"])["scopes"]
    peer.ok("stepBack", threadId=thread)
    peer.event("stopped")
    r = peer.request("variables", variablesReference=scopes[0]["variablesReference"])
    assert r["success"] is False and "after the latest stop" in r["message"]
    assert int(_top(peer, thread)["instructionPointerReference"]) < int(top["instructionPointerReference"])
    _alive(peer)


def test_evaluate_errors_name_the_locals(peer: DapPeer, recorded: tuple[Project, Path]) -> None:
    thread = peer.launch(recording=str(recorded[1]))["body"]["threadId"]
    top = _top(peer, thread)
    r = peer.request("evaluate", expression="nope", frameId=top["id"])
    assert r["success"] is False and "no local 'nope'" in r["message"] and "basket" in r["message"]
    r = peer.request("evaluate", expression="t + 1", frameId=top["id"])
    assert r["success"] is False and "not a name path" in r["message"]
    r = peer.request("evaluate", expression="prices[7]", frameId=top["id"])
    assert r["success"] is False and "out of range" in r["message"]
    assert peer.ok("evaluate", expression="basket.owner", frameId=top["id"])["result"] == "'ann'"


# -- motions, scopes, breakpoints ---------------------------------------------------------

def test_step_in_and_step_out_show_the_returned_value(peer: DapPeer, recorded: tuple[Project, Path]) -> None:
    thread = peer.launch(recording=str(recorded[1]))["body"]["threadId"]
    targets = peer.ok("gotoTargets", source={"path": str(recorded[0].path / "test_basket.py")},
                      line=LINES["call"])["targets"]
    assert targets and "back" in targets[0]["label"]
    peer.ok("goto", threadId=thread, targetId=targets[0]["id"])
    assert peer.event("stopped")["body"]["reason"] == "goto"
    assert _top(peer, thread)["line"] == LINES["call"]
    peer.ok("stepIn", threadId=thread)
    peer.event("stopped")
    assert _top(peer, thread)["name"] == "total"
    peer.ok("stepOut", threadId=thread)
    assert peer.event("stopped")["body"]["reason"] == "step"
    top = _top(peer, thread)
    assert top["name"] == "test_basket"
    local = _locals(peer, top["id"])
    assert local["(return) total"]["value"] == "24"


def test_function_breakpoint_and_uncaught_filter_from_the_start(peer: DapPeer, recorded: tuple[Project, Path]) -> None:
    stopped = peer.launch(recording=str(recorded[1]), stopAt="start")
    assert stopped["body"]["reason"] == "entry"
    thread = stopped["body"]["threadId"]
    bps = peer.ok("setFunctionBreakpoints", breakpoints=[{"name": "check"}, {"name": "no_such_fn"}])["breakpoints"]
    assert bps[0]["verified"] is True
    assert bps[1]["verified"] is False and "no_such_fn" in bps[1]["message"]
    peer.ok("continue", threadId=thread)
    hit = peer.event("stopped")["body"]
    assert hit["reason"] == "breakpoint" and hit["hitBreakpointIds"] == [bps[0]["id"]]
    assert _top(peer, thread)["name"] == "check"
    peer.ok("setFunctionBreakpoints", breakpoints=[])
    filters = peer.ok("setExceptionBreakpoints", filters=["uncaught", "bogus"])["breakpoints"]
    assert [f["verified"] for f in filters] == [True, False]
    peer.ok("continue", threadId=thread)
    assert peer.event("stopped")["body"]["reason"] == "exception"
    info = peer.ok("exceptionInfo", threadId=thread)
    assert info["exceptionId"] == "AssertionError" and info["breakMode"] == "unhandled"


def test_breakpoint_verification_and_the_start_of_the_film(peer: DapPeer, recorded: tuple[Project, Path]) -> None:
    stopped = peer.launch(recording=str(recorded[1]), stopAt="start")
    thread = stopped["body"]["threadId"]
    test_file = str(recorded[0].path / "test_basket.py")
    bps = peer.ok("setBreakpoints", source={"path": test_file},
                  breakpoints=[{"line": LINES["acc"], "condition": "p +"}, {"line": 9999},
                               {"line": LINES["acc"], "hitCondition": "often"}, {"line": LINES["acc"]}])["breakpoints"]
    assert [b["verified"] for b in bps] == [False, False, False, True]
    assert "cannot read the condition" in bps[0]["message"]
    assert "line 9999 is not in" in bps[1]["message"]
    assert "hit condition" in bps[2]["message"]
    elsewhere = peer.ok("setBreakpoints", source={"path": "/nowhere/other.py"}, breakpoints=[{"line": 3}])
    assert elsewhere["breakpoints"][0]["verified"] is False
    peer.ok("stepBack", threadId=thread)  # already at the first step
    peer.event("terminated")
    _alive(peer)


def test_scopes_hold_the_exception_in_flight(peer: DapPeer, recorded: tuple[Project, Path]) -> None:
    thread = peer.launch(recording=str(recorded[1]))["body"]["threadId"]
    top = _top(peer, thread)
    scopes = peer.ok("scopes", frameId=top["id"])["scopes"]
    assert [s["name"].split(" (")[0] for s in scopes] == ["Locals", "Exception"]
    exc = peer.ok("variables", variablesReference=scopes[1]["variablesReference"])["variables"]
    assert exc[0]["name"] == "AssertionError" and "assert 24 == 99" in exc[0]["value"]
    local = _locals(peer, top["id"])
    assert local["caught"]["value"] == "'too big: 24'"
    big = local["big"]
    assert big["value"].endswith("(truncated)"), big
    items = peer.ok("variables", variablesReference=big["variablesReference"])["variables"]
    assert items[0] == {"name": "[0]", "value": "0", "type": "int", "variablesReference": 0,
                        "presentationHint": {"attributes": ["readOnly"]}, "evaluateName": "big[0]"}
    kept = len(items) - 1
    assert 0 < kept < 500
    assert items[-1]["name"] == "…" and items[-1]["value"] == f"{500 - kept} more not recorded (truncated)"
    paged = peer.ok("variables", variablesReference=big["variablesReference"], start=2, count=3)["variables"]
    assert [v["name"] for v in paged] == ["[2]", "[3]", "[4]"]
    assert local["t"]["variablesReference"] == 0
    threads = peer.ok("threads")["threads"]
    assert [t["name"] for t in threads] == ["MainThread"]


# -- TCP and the command line ------------------------------------------------------------

def test_port_mode_serves_a_client_on_localhost(recorded: tuple[Project, Path]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pytest_escope.replay.cli", "dap", "--port", "0"],
                            cwd=recorded[0].path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env())
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", banner)
        assert m, banner
        for _ in range(2):  # one client after the other
            with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=120) as s:
                s.sendall(frame({"seq": 1, "type": "request", "command": "initialize", "arguments": {}}))
                reader = s.makefile("rb")
                header = reader.readline()
                assert header.startswith(b"Content-Length: ")
                reader.readline()
                body = reader.read(int(header.split(b":")[1]))
                assert b'"supportsStepBack": true' in body
                s.sendall(frame({"seq": 2, "type": "request", "command": "disconnect", "arguments": {}}))
    finally:
        proc.kill()
        proc.communicate(timeout=60)


@pytest.mark.parametrize("args, text", [(["--port", "70000"], "is not a port number"),
                                        (["--port", "x"], "invalid int value")])
def test_bad_port_is_one_line_and_status_2(recorded: tuple[Project, Path], args: list[str], text: str) -> None:
    res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "dap", *args], cwd=recorded[0].path,
                         capture_output=True, text=True, env=clean_env(), timeout=120)
    assert res.returncode == 2
    assert text in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_end_of_input_ends_the_server_cleanly(recorded: tuple[Project, Path]) -> None:
    res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "dap"], cwd=recorded[0].path,
                         input=frame({"seq": 1, "type": "request", "command": "initialize", "arguments": {}}),
                         capture_output=True, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(b"Content-Length: ") and b'"success": true' in res.stdout
    assert res.stderr == b""


# -- editors --------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_vscode_terminal_summary_links_each_failure(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    project.write("test_f.py", "def test_one():\n    assert 1 == 2\n")
    res = project.run("--escope", env=clean_env(TERM_PROGRAM="vscode"))
    assert "1 failed" in res.stdout, res.out
    link = "vscode://pytest-escope.escope/replay?" + urlencode({"test": "test_f.py::test_one",
                                                                 "cwd": str(project.path)})
    assert [line for line in res.stdout.splitlines() if "VS Code:" in line] == \
        [f"  VS Code:   code --open-url '{link}'"]
    res = project.run("--escope")
    assert "1 failed" in res.stdout and "VS Code:" not in res.stdout


def test_vscode_extension_declares_what_the_server_reads() -> None:
    ext_dir = ROOT / "editors" / "vscode"
    pkg = json.loads((ext_dir / "package.json").read_text())
    assert f"{pkg['publisher']}.{pkg['name']}" == "pytest-escope.escope"  # the terminal summary's link
    debugger = pkg["contributes"]["debuggers"][0]
    assert debugger["type"] == "escope"
    launch_keys = set(debugger["configurationAttributes"]["launch"]["properties"]) - {"escopePath"}
    handlers = (ROOT / "replay" / "dap_session.py").read_text()
    assert launch_keys == {"test", "recording", "run", "cwd", "stopAt"}
    for key in launch_keys:
        assert f'args.get("{key}"' in handlers, key
    script = (ext_dir / "extension.js").read_text()
    assert "registerDebugAdapterDescriptorFactory('escope'" in script and "['dap']" in script
    assert pkg["main"] == "./extension.js"
    if shutil.which("node"):
        check = subprocess.run(["node", "--check", str(ext_dir / "extension.js")], capture_output=True, text=True,
                               timeout=120)
        assert check.returncode == 0, check.stderr
