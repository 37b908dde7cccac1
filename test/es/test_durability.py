# SPDX-License-Identifier: GPL-2.0-only
"""No incident is lost when Elasticsearch goes away: they wait in the on-disk
spool, survive an agent restart, and arrive exactly once when it returns."""
import os
import time

from agentlib import control_call
from eslib import es_agent, es_status, local_ids, restart, spooled_ids, wait_for


def test_outage_of_20_incidents_then_all_arrive_once(es, prefix):
    pattern = f"{prefix}-*"
    a = es_agent([es.url], prefix)
    try:
        a.start()
        assert a.wait_incidents(2, timeout=30), a.read_log()
        first = local_ids(a)
        assert set(es.wait_ids(pattern, first, timeout=60)) >= first, a.read_log()

        # the cluster goes away while the rule keeps firing
        es.stop()
        before = local_ids(a)
        deadline = time.time() + 180
        while time.time() < deadline and len(local_ids(a) - before) < 20:
            time.sleep(0.5)
        produced = local_ids(a) - before
        assert len(produced) >= 20, a.read_log()

        # every one of them is in the spool, none was dropped after N retries
        assert produced <= spooled_ids(a)
        st = es_status(a)
        assert st["state"] in ("unreachable", "failing"), st
        assert "cannot reach" in st["last_error"] or "did not answer" in st["last_error"], st
        assert st["spool_depth"] >= 20 and st["evicted"] == 0 and st["rejected"] == 0
        assert st["request_failures"] >= 2

        # the agent restarts while the cluster is still down: not fatal
        rc, _ = a.stop()
        assert rc == 0
        spooled = spooled_ids(a)
        assert produced <= spooled
        restart(a)
        # resumed: the new run found the first run's spool on disk
        assert "holds %d incidents" % len(spooled) in a.read_log(), a.read_log()
        time.sleep(2)
        assert a.proc.poll() is None
        st = es_status(a)
        assert st["state"] in ("unreachable", "failing", "connecting"), st

        # the cluster returns: everything produced during the outage arrives
        es.start()
        got = es.wait_ids(pattern, produced | spooled, timeout=120)
        missing = (produced | spooled) - set(got)
        assert not missing, (missing, a.read_log())
        # ... exactly once (the _id is the incident id; re-sends are no-ops)
        dup = {i: n for i, n in got.items() if n != 1}
        assert not dup, dup
        st, doc = es.request("POST", f"/{pattern}/_count",
                             {"query": {"terms": {"incident.id": sorted(produced)}}})
        assert doc["count"] == len(produced)
        # the spool lets go of what the cluster acknowledged
        assert wait_for(lambda: not (produced & spooled_ids(a)), 30), spooled_ids(a) & produced
        st = es_status(a)
        assert st["state"] in ("ok", "shipping"), st
        assert "answers again" in a.read_log() or "connected to" in a.read_log()
        assert st["evicted"] == 0
    finally:
        if es.proc is None:
            es.start()
        a.cleanup()


def test_unreachable_at_start_up_is_not_fatal_and_fails_over(es, prefix, tmp_path):
    """The first URL is dead: the agent starts, says why, and ships through the second."""
    import socket
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    dead_url = "http://127.0.0.1:%d" % dead.getsockname()[1]
    a = es_agent([dead_url, es.url], prefix)
    try:
        a.start()
        assert a.wait_incidents(2, timeout=30)
        ids = local_ids(a)
        assert set(es.wait_ids(f"{prefix}-*", ids, timeout=60)) >= ids, a.read_log()
        log = a.read_log()
        assert f"cannot reach {dead_url}" in log
        assert control_call(a.socket, "ping")["ok"]
    finally:
        a.cleanup()
        dead.close()


def fake_id(ms):
    t = time.gmtime(ms / 1000)
    return time.strftime("%Y%m%dT%H%M%S", t) + "%03dZ-%016x" % (ms % 1000, ms)


def test_spool_bounds_evict_and_say_so(prefix):
    """Left over from a long outage: one incident past spool_max_age and 1.2 MiB of
    others in a 1 MiB spool. The agent evicts the old one and the oldest others,
    counts and logs them, and keeps the rest."""
    a = es_agent(["http://127.0.0.1:9"], prefix,
                 es_extra="    spool_max_size: 1MiB\n    spool_max_age: 1d\n")
    try:
        os.makedirs(a.spool_dir, mode=0o700)
        now = int(time.time() * 1000)
        stale = fake_id(now - 3 * 86400 * 1000)
        big = [fake_id(now - 3600 * 1000 + i) for i in range(3)]
        pad = "x" * (400 * 1024)
        for i in [stale] + big:
            with open(os.path.join(a.spool_dir, i + ".json"), "w") as f:
                f.write('{"incident":{"id":"%s"},"pad":"%s"}' % (i, pad))
        a.start()
        assert a.wait_incidents(1, timeout=30)
        st = wait_for(lambda: (lambda s: s if s["evicted"] >= 2 else None)(es_status(a)), 20)
        assert st, es_status(a)
        left = spooled_ids(a)
        assert stale not in left          # past spool_max_age
        assert big[0] not in left          # the oldest, to get under spool_max_size
        assert big[2] in left              # the newest stay
        assert st["spool_bytes"] <= 1 << 20
        assert st["evicted"] == 2
        log = a.read_log()
        assert "evicted 1 incidents past spool_max_age and 1 over spool_max_size" in log
        assert stale in log and big[0] in log
        assert status_dropped(a)["es_spool_evicted"] == 2
    finally:
        a.cleanup()


def status_dropped(a):
    return control_call(a.socket, "status")["result"]["dropped"]


def test_a_silent_cluster_times_out_and_fails_over(es, prefix):
    """The first URL accepts connections and never answers: the request times out
    (storage.elasticsearch.timeout), the agent says so and ships through the second."""
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # the kernel completes handshakes; nobody ever reads
    silent_url = "http://127.0.0.1:%d" % silent.getsockname()[1]
    a = es_agent([silent_url, es.url], prefix, timeout="1s")
    try:
        a.start()
        assert a.wait_incidents(2, timeout=30)
        ids = local_ids(a)
        assert set(es.wait_ids(f"{prefix}-*", ids, timeout=60)) >= ids, a.read_log()
        assert f"{silent_url} did not answer in time" in a.read_log()
        # and SIGTERM still ends it at once
        rc, took = a.stop()
        assert rc == 0 and took < 2
    finally:
        a.cleanup()
        silent.close()
