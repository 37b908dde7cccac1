# SPDX-License-Identifier: GPL-2.0-only
"""unit/layering: every project include runs down the layers, never up or sideways.

  base/  <-  probes/  <-  triggers/, storage/  <-  agent/

A file may include headers of its own folder and of folders in lower layers
only (docs/development.md, "Layers"). Exits 1 and names each include that
breaks the rule.
"""
import os
import re
import sys

RANK = {"base": 0, "probes": 1, "triggers": 2, "storage": 2, "agent": 3}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)


def violations(root):
    """(file, line, included folder) for every include that runs the wrong way."""
    bad, seen = [], 0
    for folder, rank in RANK.items():
        top = os.path.join(root, folder)
        for dirpath, _, names in os.walk(top):
            for name in sorted(names):
                if not name.endswith((".c", ".h")) or "vmlinux" in dirpath:
                    continue
                path = os.path.join(dirpath, name)
                with open(path, errors="replace") as f:
                    text = f.read()
                for m in INCLUDE.finditer(text):
                    target = m.group(1)
                    if target not in RANK:
                        continue
                    seen += 1
                    if target != folder and RANK[target] >= rank:
                        line = text.count("\n", 0, m.start()) + 1
                        bad.append((os.path.relpath(path, root), line, target))
    return bad, seen


def self_check(tmp):
    """The checker must catch an upward and a sideways include, or it proves nothing."""
    files = {
        "base/a.c": '#include "base/a.h"\n#include "agent/x.h"\n',
        "storage/s.c": '#include "triggers/r.h"\n#include "probes/p.h"\n',
        "agent/x.c": '#include "storage/s.h"\n',
    }
    for rel, text in files.items():
        os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(tmp, rel), "w") as f:
            f.write(text)
    bad, _ = violations(tmp)
    want = [("base/a.c", 2, "agent"), ("storage/s.c", 1, "triggers")]
    if sorted(bad) != sorted(want):
        sys.exit(f"layering self-check failed: found {bad}, expected {want}")


def main():
    import tempfile
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    with tempfile.TemporaryDirectory() as tmp:
        self_check(tmp)
    bad, seen = violations(root)
    if seen < 100:
        sys.exit(f"layering: only {seen} project includes found under {root}; wrong root?")
    for path, line, target in bad:
        print(f"{path}:{line}: includes {target}/, a layer that may not be used from here")
    if bad:
        sys.exit(1)
    print(f"layering: {seen} project includes, all run down the layers")


if __name__ == "__main__":
    main()
