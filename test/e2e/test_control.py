# SPDX-License-Identifier: GPL-2.0-only
"""The control socket against a running agent: permissions, peer credentials,
every kind of bad request, and clients that try to stall the event loop."""
import json
import os
import pwd
import socket
import stat
import subprocess
import time

import pytest

from agentlib import BIN, Agent, ControlClient, control_call

RULES = """
rules:
  - name: never-fires
    metric: cpu.sys_pct
    above: 1000
    capture:
      - { kind: profile, duration: 1s }
"""


@pytest.fixture
def agent():
    a = Agent(rules_yaml=RULES).start()
    yield a
    a.cleanup()


def samples(agent):
    st = control_call(agent.socket, "status")["result"]
    return sum(w["samples"] for w in st["watchers"])


def assert_error(reply, code, *words):
    assert reply is not None, "connection closed instead of an error reply"
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    for w in words:
        assert w in reply["error"]["message"], reply


def test_socket_and_directory_modes(agent):
    st = os.lstat(agent.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0
    # the agent removes its socket on exit, and only its own
    agent.stop()
    assert not os.path.exists(agent.socket)


def test_socket_directory_created_private(tmp_path):
    a = Agent(rules_yaml=RULES)
    try:
        sockdir = os.path.join(a.dir, "run", "deeper")
        with open(a.config) as f:
            cfg = f.read().replace(a.socket, os.path.join(sockdir, "control.sock"))
        with open(a.config, "w") as f:
            f.write(cfg)
        a.start()
        assert stat.S_IMODE(os.stat(sockdir).st_mode) == 0o700
        assert control_call(os.path.join(sockdir, "control.sock"), "ping")["ok"]
    finally:
        a.cleanup()


def test_refuses_group_writable_socket_dir_but_keeps_running(tmp_path):
    a = Agent(rules_yaml=RULES)
    try:
        sockdir = os.path.join(a.dir, "shared")
        os.mkdir(sockdir)
        os.chmod(sockdir, 0o777)
        with open(a.config) as f:
            cfg = f.read().replace(a.socket, os.path.join(sockdir, "control.sock"))
        with open(a.config, "w") as f:
            f.write(cfg)
        a.start()
        log = a.read_log()
        assert "not writable by group or others" in log, log
        assert "autotrace status and trigger will not work" in log
        assert not os.path.exists(os.path.join(sockdir, "control.sock"))
        assert a.proc.poll() is None  # still watching
    finally:
        a.cleanup()


def test_stale_socket_replaced_live_one_kept(agent):
    # a second agent on the same socket must not steal it from the first
    b = Agent(rules_yaml=RULES)
    try:
        with open(b.config) as f:
            cfg = f.read().replace(b.socket, agent.socket)
        with open(b.config, "w") as f:
            f.write(cfg)
        b.start()
        assert "another agent is listening on it" in b.read_log()
        b.stop()
        assert os.path.exists(agent.socket)
        assert control_call(agent.socket, "ping")["result"]["pid"] == agent.proc.pid
    finally:
        b.cleanup()
    # a crashed agent leaves its socket behind: the next one replaces it
    agent.stop(sig=9)
    assert os.path.exists(agent.socket)
    agent.notify.messages.clear()
    agent.start()
    assert "removed a stale socket" in agent.read_log()
    assert control_call(agent.socket, "ping")["result"]["pid"] == agent.proc.pid


def test_ping_echoes_id(agent):
    c = ControlClient(agent.socket)
    r = c.call("ping", id=42)
    assert r["ok"] and r["id"] == 42
    assert r["result"]["protocol"] == 1 and r["result"]["pid"] == agent.proc.pid
    r = c.call("ping", id="abc")
    assert r["id"] == "abc"
    c.close()


@pytest.mark.parametrize("line,code,words", [
    (b"this is not json\n", "invalid_json", ["column"]),
    (b'{"command": "ping"\n', "invalid_json", []),
    (b"[1, 2]\n", "invalid_request", ["JSON object"]),
    (b'"ping"\n', "invalid_json", []),
    (b'{"command": "ping", "extra": 1}\n', "invalid_request", ["unknown field 'extra'"]),
    (b'{"command": "ping", "command": "status"}\n', "invalid_json", ["duplicate"]),
    (b'{"args": {}}\n', "invalid_request", ["command"]),
    (b'{"command": 7}\n', "invalid_request", ["command"]),
    (b'{"command": "reboot"}\n', "unknown_command", ["reboot", "status", "trigger"]),
    (b'{"command": "ping", "args": {"x": 1}}\n', "invalid_request", ["unknown field 'x'"]),
    (b'{"command": "ping", "args": []}\n', "invalid_request", ["args"]),
    (b'{"command": "ping", "id": {"a": 1}}\n', "invalid_request", ["id"]),
    (b'{"command": "trigger", "args": {"captures": ["profile"], "pid": 0}}\n',
     "invalid_request", ["args.pid", "out of range"]),
    (b'{"command": "trigger", "args": {"captures": ["profile"], "pid": "1"}}\n',
     "invalid_request", ["args.pid", "integer"]),
    (b'{"command": "trigger", "args": {"captures": "profile"}}\n',
     "invalid_request", ["args.captures", "array"]),
    (b'{"command": "trigger", "args": {"captures": []}}\n', "invalid_request", ["entries"]),
    (b'{"command": "trigger", "args": {"captures": ["profile"], "rule": "x"}}\n',
     "invalid_request", ["exactly one"]),
    (b'{"command": "trigger", "args": {"captures": ["profile"], "pid": 1, "cgroup": "/"}}\n',
     "invalid_request", ["at most one"]),
    (b'{"command": "trigger", "args": {"captures": ["nope"]}}\n', "invalid_request",
     ["unknown capture kind 'nope'", "profile"]),
    (b'{"command": "trigger", "args": {"rule": "nope"}}\n', "not_found",
     ["no rule named 'nope'", "never-fires"]),
    (b'{"command": "trigger", "args": {"captures": ["profile"], "duration_ms": 3600000}}\n',
     "invalid_request", ["capture.max_duration"]),
    (b'{"command": "trigger", "args": {"captures": ["profile"], "cgroup": "/../../etc"}}\n',
     "invalid_request", ["cgroup"]),
    (b'{"command": "incident", "args": {"id": "20000101T000000000Z-0000000000000000"}}\n',
     "not_found", ["no incident"]),
    (b'{"command": "ping"}\x00garbage\n', "invalid_json", []),
    (b'\xff\xfe\xfd\n', "invalid_json", []),
])
def test_bad_request_gets_precise_error_and_connection_survives(agent, line, code, words):
    c = ControlClient(agent.socket)
    c.send_raw(line)
    assert_error(c.recv(), code, *words)
    # framing is by line: the next request on the same connection works
    assert c.call("ping", id=1)["ok"]
    c.close()


def test_bad_request_changes_nothing(agent):
    before = control_call(agent.socket, "status")["result"]
    c = ControlClient(agent.socket)
    c.send_raw(b'{"command": "trigger", "args": {"captures": ["profile"], "pid": 1, "x": 1}}\n')
    assert_error(c.recv(), "invalid_request", "unknown field 'x'")
    c.close()
    after = control_call(agent.socket, "status")["result"]
    assert after["captures"]["sessions"] == [] and after["incidents"]["written"] == 0
    assert before["captures"]["kinds"][0]["runs"] == after["captures"]["kinds"][0]["runs"]


def test_oversized_line_is_refused_and_connection_closed(agent):
    c = ControlClient(agent.socket)
    # no newline in 16 KiB: the agent cannot know where the next request starts
    c.send_raw(b'{"command": "ping", "id": "' + b"x" * 20000)
    assert_error(c.recv(), "line_too_long", "16384")
    assert c.closed_by_peer()
    c.close()
    # a line just under the limit is fine
    c = ControlClient(agent.socket)
    pad = 16384 - len(b'{"command":"ping","id":1}\n') - 1
    c.send_raw(b'{"command":"ping",' + b" " * pad + b'"id":1}\n')
    assert c.recv()["ok"]
    c.close()


def test_pipelined_requests_answered_in_order(agent):
    c = ControlClient(agent.socket)
    c.send_raw(b"".join(json.dumps({"command": "ping", "id": i}).encode() + b"\n"
                        for i in range(50)))
    assert [c.recv()["id"] for _ in range(50)] == list(range(50))
    c.close()


def test_last_request_without_newline_at_eof(agent):
    c = ControlClient(agent.socket)
    c.send_raw(b'{"command": "ping", "id": 9}')
    c.sock.shutdown(socket.SHUT_WR)
    assert c.recv()["id"] == 9
    assert c.closed_by_peer()
    c.close()


NOBODY = pwd.getpwnam("nobody")

PEER_SCRIPT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect-failed", e.errno)
    sys.exit(0)
try:
    s.sendall(b'{"command": "status"}\\n')
except OSError:
    pass  # refused before the request was written: the reply is still there
data = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
except ConnectionResetError:
    pass
print(data.decode())
"""


def as_nobody(*cmd):
    return subprocess.run(["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}",
                           "--clear-groups", *cmd], capture_output=True, text=True, timeout=30)


def test_non_root_peer_refused_by_credentials(agent):
    # with the file permissions the agent sets, nobody cannot even connect
    out = as_nobody("/usr/bin/python3", "-c", PEER_SCRIPT, agent.socket)
    assert out.stdout.startswith("connect-failed 13"), out
    out = as_nobody(BIN, "status", "--socket", agent.socket)
    assert out.returncode == 1
    assert "root-only" in out.stderr
    # open the file permissions: SO_PEERCRED must still turn nobody away
    os.chmod(agent.dir, 0o755)
    os.chmod(agent.socket, 0o666)
    out = as_nobody("/usr/bin/python3", "-c", PEER_SCRIPT, agent.socket)
    reply = json.loads(out.stdout.strip().splitlines()[0])
    assert_error(reply, "permission_denied", "root only")
    assert "control: refused uid %d" % NOBODY.pw_uid in agent.read_log()
    st = control_call(agent.socket, "status")["result"]
    assert st["control"]["rejected_peer"] == 1


def test_silent_clients_do_not_stall_the_loop_and_time_out(agent):
    silent = [ControlClient(agent.socket) for _ in range(5)]
    dribbler = ControlClient(agent.socket)
    s0 = samples(agent)
    t0 = time.monotonic()
    # one byte a second: never a whole request before the idle limit... it
    # makes progress, so it is kept; the silent ones are not
    for i, ch in enumerate(b'{"command": "ping"'):
        if i >= 3:
            break
        dribbler.send_raw(bytes([ch]))
        t = time.monotonic()
        assert control_call(agent.socket, "ping")["ok"]
        assert time.monotonic() - t < 1.0, "the loop waited for a slow client"
        time.sleep(1)
    # watchers keep sampling while clients hang around
    time.sleep(2)
    assert samples(agent) > s0
    # after 10 s without a request the silent ones get idle_timeout and EOF
    for c in silent:
        c.sock.settimeout(15)
        assert_error(c.recv(), "idle_timeout")
        assert c.closed_by_peer()
        c.close()
    assert time.monotonic() - t0 >= 9
    st = control_call(agent.socket, "status")["result"]["control"]
    assert st["timed_out"] >= 5
    dribbler.close()


def test_client_that_never_reads_is_dropped(agent):
    greedy = ControlClient(agent.socket)
    greedy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # ask for many status documents, read none: the agent buffers one reply only
    req = b'{"command": "status"}\n' * 200
    greedy.sock.settimeout(2)
    try:
        greedy.send_raw(req)
    except socket.timeout:
        pass  # the agent stopped reading us: that is the point
    t = time.monotonic()
    assert control_call(agent.socket, "ping")["ok"]
    assert time.monotonic() - t < 1.0
    deadline = time.time() + 20
    while time.time() < deadline:
        if control_call(agent.socket, "status")["result"]["control"]["timed_out"] >= 1:
            break
        time.sleep(0.5)
    else:
        pytest.fail("a client that never reads was never dropped")
    greedy.close()
    assert agent.proc.poll() is None


def test_too_many_clients(agent):
    held = [ControlClient(agent.socket) for _ in range(16)]
    for c in held:  # make sure all 16 are accepted before the 17th
        assert c.call("ping")["ok"]
    extra = ControlClient(agent.socket)
    assert_error(extra.recv(), "too_many_clients")
    extra.close()
    for c in held:
        c.close()
    time.sleep(0.3)
    st = control_call(agent.socket, "status")["result"]["control"]
    assert st["rejected_full"] == 1
    assert st["clients"] == 1  # this one


def test_connection_flood(agent):
    # many connects and disconnects in a row: nothing leaks, the agent stays up
    for _ in range(300):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(agent.socket)
        s.close()
    assert control_call(agent.socket, "ping")["ok"]
    nfds = len(os.listdir(f"/proc/{agent.proc.pid}/fd"))
    for _ in range(100):
        c = ControlClient(agent.socket)
        c.call("status")
        c.close()
    time.sleep(0.5)
    assert len(os.listdir(f"/proc/{agent.proc.pid}/fd")) <= nfds + 1
