# SPDX-License-Identifier: GPL-2.0-only
"""The Debian package, installed the way a platform team would: built by CPack
from this source, installed with apt into a fresh Debian root (which pulls in
exactly the dependencies the package declares), then the installed binary run
from there: probes, the agent on its packaged defaults, status, a manual
capture, an incident. Then the maintainer scripts with and without systemd,
conffile handling, and purge."""
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from agentlib import SRC

CACHE = "/var/cache/autotrace-test"
ROOTFS = os.path.join(CACHE, "bookworm-minbase.tar")


def run(cmd, timeout=900, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert out.returncode == 0, f"{cmd} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """A release build of this source tree, packaged by CPack."""
    build = tmp_path_factory.mktemp("pkgbuild")
    run(["cmake", "-S", SRC, "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
         "-DCMAKE_INSTALL_PREFIX=/usr", "-DAUTOTRACE_TESTS=OFF"])
    run(["cmake", "--build", str(build)])
    run(["cpack"], cwd=str(build))
    version = re.search(r"project\(autotrace VERSION ([0-9.]+)",
                        open(os.path.join(SRC, "CMakeLists.txt")).read()).group(1)
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    path = build / f"autotrace_{version}_{arch}.deb"
    assert path.exists(), os.listdir(build)
    return {"path": str(path), "version": version, "arch": arch}


def test_package_metadata(deb):
    f = lambda field: run(["dpkg-deb", "-f", deb["path"], field]).stdout.strip()
    assert f("Package") == "autotrace" and f("Version") == deb["version"]
    assert f("Architecture") == deb["arch"] and f("Section") == "admin"
    depends = f("Depends")
    # libcurl4 is loaded at run time (storage/curlapi.c): named in Depends by hand
    for lib in ("libbpf1", "libelf1", "libyaml-0-2", "libjansson4", "libc6", "libcurl4"):
        assert lib in depends, depends
    control = subprocess.run(["dpkg-deb", "-I", deb["path"], "conffiles"], capture_output=True,
                             text=True).stdout.split()
    rules = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SRC, "config/rules.d/*.yaml")))
    assert control == ["/etc/autotrace/autotrace.yaml"] + [f"/etc/autotrace/rules.d/{r}" for r in rules]
    listing = run(["dpkg-deb", "-c", deb["path"]]).stdout
    entries = {}
    for line in listing.splitlines():
        mode, owner, _size, _d, _t, path = line.split(None, 5)
        entries[path.rstrip("/").lstrip(".")] = (mode, owner)
    assert all(owner == "root/root" for _, owner in entries.values())
    assert entries["/usr/sbin/autotrace"][0] == "-rwxr-xr-x"
    assert entries["/var/lib/autotrace"][0] == "drwx------"
    assert entries["/etc/autotrace/autotrace.yaml"][0] == "-rw-r--r--"
    for p in ("/usr/lib/systemd/system/autotrace.service", "/usr/share/man/man8/autotrace.8.gz",
              "/usr/share/bash-completion/completions/autotrace",
              "/usr/share/doc/autotrace/copyright", "/usr/share/doc/autotrace/control-protocol.md"):
        assert p in entries, p
    # the binary's libraries all come from packages the Depends line names
    x = os.path.join(os.path.dirname(deb["path"]), "x")
    run(["dpkg-deb", "-x", deb["path"], x])
    needed = re.findall(r"NEEDED\s+Shared library: \[(.+?)\]",
                        run(["readelf", "-d", os.path.join(x, "usr/sbin/autotrace")]).stdout)
    for lib in needed:
        owner = run(["dpkg", "-S", "*/" + lib]).stdout.split(":")[0]
        assert owner in depends, (lib, owner, depends)


def fresh_rootfs():
    """A minimal Debian root (Essential packages + apt), built once and cached."""
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(ROOTFS):
            if not shutil.which("mmdebstrap"):
                pytest.fail("mmdebstrap is missing: run ./setup.sh deps")
            suite = run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"]).stdout.strip()
            run(["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar", suite,
                 ROOTFS + ".tmp"],
                timeout=1800)
            os.rename(ROOTFS + ".tmp", ROOTFS)
    return ROOTFS


class Chroot:
    def __init__(self, root):
        self.root = root
        self.mounts = []

    def mount(self):
        for src, dst, args in (("proc", "proc", ["-t", "proc"]), ("/sys", "sys", ["--rbind"]),
                               ("/dev", "dev", ["--rbind"]), ("tmpfs", "run", ["-t", "tmpfs"])):
            target = os.path.join(self.root, dst)
            os.makedirs(target, exist_ok=True)
            run(["mount", *args, src, target])
            if "--rbind" in args:
                run(["mount", "--make-rslave", target])
            self.mounts.append(target)
        shutil.copy("/etc/resolv.conf", os.path.join(self.root, "etc/resolv.conf"))

    def umount(self):
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-R", "-l", target], capture_output=True)
        self.mounts = []

    def sh(self, script, check=True, timeout=900):
        out = subprocess.run(["chroot", self.root, "/bin/sh", "-c", script], capture_output=True,
                             text=True, timeout=timeout,
                             env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                          "/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
                                  "LC_ALL": "C"})
        if check:
            assert out.returncode == 0, f"{script}:\n{out.stdout}\n{out.stderr}"
        return out

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))


@pytest.fixture(scope="module")
def chroot(tmp_path_factory, deb):
    tar = fresh_rootfs()
    root = str(tmp_path_factory.mktemp("root"))
    run(["tar", "-xpf", tar, "-C", root])
    c = Chroot(root)
    try:
        c.mount()
        shutil.copy(deb["path"], c.path("/tmp/autotrace.deb"))
        yield c
    finally:
        c.umount()


def test_install_into_fresh_root_and_run(chroot, deb):
    c = chroot
    assert c.sh("command -v autotrace", check=False).returncode != 0  # truly fresh
    c.sh("apt-get update -q", timeout=600)
    # apt resolves the package's own Depends against Debian: nothing else is there
    c.sh("apt-get install -y -q --no-install-recommends /tmp/autotrace.deb", timeout=900)
    st = c.sh("dpkg-query -W -f='${Status} ${Version}' autotrace").stdout
    assert st == f"install ok installed {deb['version']}"
    # no systemd in this root: the maintainer scripts must not have needed it
    assert not os.path.exists(c.path("/run/systemd/system"))
    assert oct(os.stat(c.path("/var/lib/autotrace")).st_mode & 0o777) == "0o700"

    out = c.sh("autotrace --version").stdout
    assert out.strip() == f"autotrace {deb['version']}"
    # the packaged default rules pass the agent's own checks (owner, mode, schema)
    out = c.sh("autotrace rules check")
    assert "OK" in out.stdout
    # the installed binary on the real kernel
    probes = json.loads(c.sh("autotrace probes --json").stdout)
    feats = {f["name"]: f["state"] for f in probes["features"]}
    assert feats["btf"] == "yes" and feats["perf_events"] == "yes"
    assert feats["uprobes"] == "yes", probes  # needs its symbol in the stripped binary
    assert {k["kind"]: k["state"] for k in probes["captures"]}["profile"] == "ready"
    # man page and completion as installed
    man = run(["sh", "-c", f"zcat {c.path('/usr/share/man/man8/autotrace.8.gz')}"]).stdout
    assert ".TH AUTOTRACE 8" in man and "autotrace trigger" in man
    c.sh("bash -n /usr/share/bash-completion/completions/autotrace")


def test_installed_agent_runs_on_packaged_defaults(chroot):
    c = chroot
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    log = open(c.path("/tmp/agent.log"), "w")
    agent = subprocess.Popen(["chroot", c.root, "/usr/sbin/autotrace", "run"], stdout=log,
                             stderr=subprocess.STDOUT, env=env)
    try:
        sock = c.path("/run/autotrace/control.sock")
        deadline = time.time() + 60
        while time.time() < deadline and not os.path.exists(sock):
            assert agent.poll() is None, open(c.path("/tmp/agent.log")).read()
            time.sleep(0.2)
        assert os.path.exists(sock), open(c.path("/tmp/agent.log")).read()
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
        time.sleep(2)
        st = json.loads(c.sh("autotrace status --json").stdout)
        assert st["agent"]["config"] == "/etc/autotrace/autotrace.yaml"
        assert st["incidents"]["dir"] == "/var/lib/autotrace/incidents"
        out = c.sh("autotrace trigger --capture profile --duration 1s", timeout=120).stdout
        iid = re.search(r"incident (\S+) written", out).group(1)
        listed = c.sh("autotrace incidents list -q").stdout.split()
        assert iid in listed
        show = c.sh(f"autotrace incidents show {iid}").stdout
        assert "capture profile" in show
    finally:
        agent.send_signal(signal.SIGTERM)
        rc = agent.wait(timeout=10)
        log.close()
    assert rc == 0, open(c.path("/tmp/agent.log")).read()
    assert not os.path.exists(c.path("/run/autotrace/control.sock"))


FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> /tmp/systemctl.log
case "$1" in is-enabled) echo enabled ;; is-active) echo active ;; esac
exit 0
"""


def test_maintainer_scripts_conffiles_and_purge(chroot):
    c = chroot
    # an admin's edit to a conffile survives a reinstall
    with open(c.path("/etc/autotrace/autotrace.yaml"), "a") as f:
        f.write("# edited by the admin\n")
    c.sh("dpkg -i /tmp/autotrace.deb")
    assert "# edited by the admin" in open(c.path("/etc/autotrace/autotrace.yaml")).read()
    assert not os.path.exists(c.path("/tmp/systemctl.log"))  # still no systemd: never called

    # with systemd running, the scripts reload it and (re)start the unit
    os.makedirs(c.path("/run/systemd/system"))
    with open(c.path("/usr/local/sbin/systemctl"), "w") as f:
        f.write(FAKE_SYSTEMCTL)
    os.chmod(c.path("/usr/local/sbin/systemctl"), 0o755)
    try:
        c.sh("dpkg -i /tmp/autotrace.deb")
        calls = open(c.path("/tmp/systemctl.log")).read()
        assert "daemon-reload" in calls, calls
        assert re.search(r"(try-restart|restart).*autotrace.service", calls), calls
        c.sh("dpkg --remove autotrace")
        calls = open(c.path("/tmp/systemctl.log")).read()
        assert re.search(r"stop.*autotrace.service", calls), calls
        assert not os.path.exists(c.path("/usr/sbin/autotrace"))
        # removed, not purged: the admin's configuration stays
        assert os.path.exists(c.path("/etc/autotrace/autotrace.yaml"))
    finally:
        os.unlink(c.path("/usr/local/sbin/systemctl"))
        shutil.rmtree(c.path("/run/systemd"))
    c.sh("dpkg --purge autotrace")
    for gone in ("/etc/autotrace", "/var/lib/autotrace", "/usr/share/doc/autotrace",
                 "/usr/lib/systemd/system/autotrace.service"):
        assert not os.path.exists(c.path(gone)), gone
    assert c.sh("dpkg-query -W autotrace", check=False).returncode != 0 or \
        "not-installed" in c.sh("dpkg-query -W -f='${Status}' autotrace", check=False).stdout
