# SPDX-License-Identifier: GPL-2.0-only
"""A document the cluster refuses for good (a mapping conflict) is counted,
logged loudly, parked instead of retried forever, and stays in the local store;
the incidents around it keep flowing."""
import copy
import json
import os
import time

from eslib import es_agent, es_status, local_ids, parked_ids, spooled_ids, status, wait_for

RULE = """rules:
  - name: "{name}"
    metric: cpu.idle_pct
    above: -1
    dry_run: true
    cooldown: 1s
"""


def test_mapping_conflict_is_parked_not_retried(es, prefix):
    # someone created today's (and tomorrow's) index with rule.name as a number:
    # "12345" fits, "bad-rule" is refused with a 400 for good
    # (the agent's own mapping otherwise, as its template would have made it)
    with open(os.path.join(os.environ["AUTOTRACE_SOURCE_DIR"], "config",
                           "es-index-template.json")) as f:
        mappings = copy.deepcopy(json.load(f)["template"]["mappings"])
    mappings["properties"]["rule"]["properties"]["name"] = {"type": "long"}
    now = time.time()
    for t in (now, now + 86400):
        day = time.strftime("%Y.%m.%d", time.gmtime(t))
        es.ok("PUT", f"/{prefix}-{day}", {"mappings": mappings})
    # two nodes: one whose rule name fits the number, one whose rule name does not
    good_agent = es_agent([es.url], prefix, rules_yaml=RULE.format(name="12345"),
                          hostname="good-" + prefix)
    a = es_agent([es.url], prefix, rules_yaml=RULE.format(name="bad-rule"))
    try:
        good_agent.start()
        a.start()

        def bad_ids():
            return local_ids(a)

        def good_ids():
            return local_ids(good_agent)

        assert wait_for(lambda: len(bad_ids()) >= 3 and len(good_ids()) >= 3, 60), a.read_log()
        bad = bad_ids()
        good = good_ids()
        # the good ones arrive, the bad ones are parked
        got = es.wait_ids(f"{prefix}-*", good, timeout=60)
        assert good <= set(got), a.read_log()
        assert wait_for(lambda: bad <= parked_ids(a), 30), (parked_ids(a), a.read_log())
        assert not (bad & set(es.ids(f"{prefix}-*")))

        st = es_status(a)
        assert st["rejected"] >= len(bad)
        assert st["parked"] >= len(bad)
        assert st["last_rejected"]["reason"].startswith("HTTP 400")
        assert "rule.name" in st["last_rejected"]["reason"]
        assert status(a)["dropped"]["es_rejected"] == st["rejected"]

        # still in the local store, and the reason is kept beside the parked copy
        assert bad <= local_ids(a)
        some = sorted(bad)[0]
        with open(f"{a.spool_dir}/parked/{some}.reason") as f:
            reason = f.read()
        assert "HTTP 400" in reason and "rule.name" in reason

        # not retried: each refused incident is sent and rejected exactly once
        time.sleep(5)
        log = a.read_log()
        for i in bad:
            assert log.count(f"elasticsearch REJECTED incident {i}") == 1, log
            assert f"incident {i} not stored" not in log  # never queued for a retry
        assert not (bad & spooled_ids(a))
        # loud: at error level, with where to find it
        line = next(l for l in log.splitlines() if f"REJECTED incident {some}" in l)
        assert " error " in line and "parked in" in line and "local incident store" in line
        # the good ones still flow after the rejects
        later = good_ids() - good
        assert later and set(es.wait_ids(f"{prefix}-*", later, timeout=60)) >= later
        assert es_status(a)["state"] in ("ok", "shipping")
        assert es_status(good_agent)["rejected"] == 0
    finally:
        a.cleanup()
        good_agent.cleanup()
