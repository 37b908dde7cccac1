# SPDX-License-Identifier: GPL-2.0-only
"""TLS and authentication, with nginx in front of the real Elasticsearch:
certificates made by openssl here, verification on by default, secrets read from
root-only files and never logged. A wrong password or an untrusted certificate
is a clear error and loses nothing: fixed and reloaded, everything arrives."""
import base64
import os
import signal
import subprocess

import pytest

from agentlib import BIN
from eslib import (Nginx, es_agent, es_status, local_ids, make_pki, rewrite_config, status,
                   spooled_ids, wait_for)

PASSWORD = "s3cret-Pa55-f0r-test"
WRONG = "wr0ng-Pa55-n0t-this"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def secret(tmp_path, name, text, mode=0o600):
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, mode)
    return path


def never_leaked(a, *secrets):
    """Neither the log nor `autotrace status` ever shows a secret."""
    out = subprocess.run([BIN, "status", "--json", "--socket", a.socket], capture_output=True,
                         text=True).stdout
    for s in secrets:
        assert s not in a.read_log()
        assert s not in out


def shipped_all(es, a, timeout=90):
    ids = local_ids(a)
    assert ids
    got = es.wait_ids(f"{a.prefix}-*", ids, timeout=timeout)
    assert ids <= set(got), (ids - set(got), a.read_log())
    return ids


def test_basic_auth_over_tls(es, pki, prefix, tmp_path):
    proxy = Nginx(es.url, pki, auth="basic", user="autotrace", password=PASSWORD).start()
    pw = secret(tmp_path, "es.password", PASSWORD)
    a = es_agent([proxy.url], prefix, es_extra=(
        f"    username: autotrace\n    password_file: {pw}\n    ca_file: {pki['ca']}\n"))
    try:
        a.start()
        assert a.wait_incidents(2, timeout=30)
        shipped_all(es, a)
        # it really went through TLS + basic auth, gzip-compressed
        log = proxy.access_log()
        assert "autotrace" in log and "POST /_bulk" in log
        bulk = [l.split() for l in log.splitlines() if "POST /_bulk" in l]
        assert all(l[-1] == "gzip" for l in bulk), log
        # ... over kept-alive connections: many requests, few connections
        lines = [l.split() for l in log.splitlines() if l.strip()]
        assert len(lines) >= 4, log
        assert len({l[0] for l in lines}) < len(lines) / 2, log
        assert es_status(a)["url"] == proxy.url
        never_leaked(a, PASSWORD)
        rc, took = a.stop()
        assert rc == 0 and took < 2, a.read_log()
    finally:
        a.cleanup()
        proxy.cleanup()


def test_wrong_password_is_a_clear_error_and_loses_nothing(es, pki, prefix, tmp_path):
    proxy = Nginx(es.url, pki, auth="basic", user="autotrace", password=PASSWORD).start()
    pw = secret(tmp_path, "es.password", WRONG)
    a = es_agent([proxy.url], prefix, es_extra=(
        f"    username: autotrace\n    password_file: {pw}\n    ca_file: {pki['ca']}\n"))
    try:
        a.start()
        st = wait_for(lambda: (lambda s: s if s.get("last_error") and s["spool_depth"] >= 3
                               else None)(es_status(a)), 60)
        assert st, es_status(a)
        assert "authentication failed" in st["last_error"] and "HTTP 401" in st["last_error"]
        assert "password_file" in st["last_error"]
        assert st["state"] == "failing" and st["shipped"] == 0
        assert "authentication failed" in a.read_log()
        # nothing lost: the spool and the local store hold every incident
        held = local_ids(a)
        assert held <= spooled_ids(a) | local_ids(a)
        assert len(spooled_ids(a)) >= 3
        never_leaked(a, WRONG, PASSWORD)

        # the SRE fixes the file and reloads: the backlog arrives
        before = spooled_ids(a)
        secret(tmp_path, "es.password", PASSWORD)
        a.proc.send_signal(signal.SIGHUP)
        got = es.wait_ids(f"{prefix}-*", before, timeout=90)
        assert before <= set(got), a.read_log()
        assert wait_for(lambda: es_status(a)["state"] in ("ok", "shipping"), 30)
        never_leaked(a, WRONG, PASSWORD)
    finally:
        a.cleanup()
        proxy.cleanup()


def test_untrusted_certificate_is_a_clear_error_and_loses_nothing(es, pki, prefix, tmp_path):
    proxy = Nginx(es.url, pki, auth="none").start()
    # verification is on by default: a CA that did not sign the server's
    # certificate (and, below, the system CAs) must not be accepted
    a = es_agent([proxy.url], prefix, es_extra=f"    ca_file: {pki['other_ca']}\n")
    try:
        a.start()
        st = wait_for(lambda: (lambda s: s if s.get("last_error") and s["spool_depth"] >= 2
                               else None)(es_status(a)), 60)
        assert st, es_status(a)
        assert "not trusted" in st["last_error"] and "ca_file" in st["last_error"], st
        assert st["shipped"] == 0
        assert "POST /_bulk" not in proxy.access_log()

        rewrite_config(a, "")  # no ca_file: the system's CAs do not know ours either
        a.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "not trusted" in a.read_log().split("reloading")[-1], 30)
        assert es_status(a)["shipped"] == 0

        backlog = spooled_ids(a)
        assert len(backlog) >= 2
        rewrite_config(a, f"    ca_file: {pki['ca']}\n")
        a.proc.send_signal(signal.SIGHUP)
        got = es.wait_ids(f"{prefix}-*", backlog, timeout=90)
        assert backlog <= set(got), a.read_log()
    finally:
        a.cleanup()
        proxy.cleanup()


def test_api_key(es, pki, prefix, tmp_path):
    key_id, key = "VuaCfGcBCdbkQm-e5aOx", "ui2lp2axTNmsyakw9tvNnw"
    encoded = base64.b64encode(f"{key_id}:{key}".encode()).decode()
    proxy = Nginx(es.url, pki, auth="api_key", api_key=encoded).start()
    # the id:key pair as the create-API-key call lists it; the agent encodes it
    keyfile = secret(tmp_path, "es.apikey", f"{key_id}:{key}")
    a = es_agent([proxy.url], prefix, es_extra=(
        f"    api_key_file: {keyfile}\n    ca_file: {pki['ca']}\n"))
    try:
        a.start()
        assert a.wait_incidents(2, timeout=30)
        shipped_all(es, a)
        never_leaked(a, key, encoded)
    finally:
        a.cleanup()
        proxy.cleanup()


def test_client_certificate(es, pki, prefix, tmp_path):
    proxy = Nginx(es.url, pki, auth="client_cert").start()
    a = es_agent([proxy.url], prefix, es_extra=(
        f"    ca_file: {pki['ca']}\n    client_cert: {pki['client_cert']}\n"
        f"    client_key: {pki['client_key']}\n"))
    try:
        a.start()
        assert a.wait_incidents(2, timeout=30)
        shipped_all(es, a)
    finally:
        a.cleanup()
    # without the certificate the proxy refuses, and the agent says so
    b = es_agent([proxy.url], prefix, es_extra=f"    ca_file: {pki['ca']}\n")
    try:
        b.start()
        st = wait_for(lambda: (lambda s: s if s.get("last_error") else None)(es_status(b)), 60)
        assert st and "HTTP 400" in st["last_error"], st
        assert st["shipped"] == 0 and st["spool_depth"] >= 1
    finally:
        b.cleanup()
        proxy.cleanup()


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_secret_files_must_be_private(prefix, tmp_path, mode):
    pw = secret(tmp_path, "es.password", PASSWORD, mode=mode)
    a = es_agent(["https://127.0.0.1:9"], prefix, es_extra=(
        f"    username: autotrace\n    password_file: {pw}\n"))
    try:
        out = subprocess.run([BIN, "run", "-c", a.config], capture_output=True, text=True,
                             timeout=30, env=dict(os.environ, NOTIFY_SOCKET=""))
        assert out.returncode != 0
        err = out.stdout + out.stderr
        assert f"password_file {pw}: accessible by group or others" in err
        assert "chmod 600" in err
        assert PASSWORD not in err
    finally:
        a.cleanup()


def test_credentials_in_a_url_are_refused(prefix):
    a = es_agent([f"https://autotrace:{PASSWORD}@127.0.0.1:9"], prefix)
    try:
        out = subprocess.run([BIN, "run", "-c", a.config], capture_output=True, text=True,
                             timeout=30, env=dict(os.environ, NOTIFY_SOCKET=""))
        assert out.returncode != 0
        err = out.stdout + out.stderr
        assert "holds credentials" in err and PASSWORD not in err
    finally:
        a.cleanup()


def test_a_reload_with_a_bad_secret_changes_nothing(es, pki, prefix, tmp_path):
    """A reload that would read a secret others can read is refused as a whole:
    the running client keeps shipping with what it had."""
    proxy = Nginx(es.url, pki, auth="basic", user="autotrace", password=PASSWORD).start()
    pw = secret(tmp_path, "es.password", PASSWORD)
    a = es_agent([proxy.url], prefix, es_extra=(
        f"    username: autotrace\n    password_file: {pw}\n    ca_file: {pki['ca']}\n"))
    try:
        a.start()
        assert a.wait_incidents(1, timeout=30)
        shipped_all(es, a)
        os.chmod(pw, 0o644)
        a.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed" in a.read_log(), 20), a.read_log()
        assert "accessible by group or others" in a.read_log()
        st = wait_for(lambda: (lambda s: s if "last_reload_error" in s["agent"] else None)(
            status(a)), 10)
        assert st
        # still shipping, with the password read at start-up
        before = es_status(a)["shipped"]
        assert wait_for(lambda: es_status(a)["shipped"] > before, 30), a.read_log()
        shipped_all(es, a)
        never_leaked(a, PASSWORD)
    finally:
        a.cleanup()
        proxy.cleanup()
