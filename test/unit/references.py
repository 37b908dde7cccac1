# SPDX-License-Identifier: GPL-2.0-only
"""unit/references: the repository stands on its own.

Someone with only this repository must be able to read everything it cites, so
no file may refer to a document that lives elsewhere (the design notes the
project started from, a shared folder next to the checkout, the machine's work
tree), and every relative link in the Markdown files must land on a file inside
the repository. Exits 1 and names each offending line.
"""
import os
import re
import subprocess
import sys

# Built from pieces so that this file does not match itself.
FOREIGN = [
    (re.compile("DES" + r"IGN\.md", re.I), "a design document outside the repository"),
    (re.compile(r"(?<![\w.])(?:\.\./)+" + "sha" + r"red\b"), "a folder next to the checkout"),
    (re.compile(r"/" + "wo" + r"rk/(?:sha" + r"red|wt|main|\.library)\b"),
     "the development machine's work tree"),
]
# [text](target) and [text]: target, outside code spans
MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\[[^\]\n]+\]:\s*(\S+)", re.M)
TEXT_SUFFIXES = (".c", ".h", ".py", ".sh", ".cmake", ".md", ".txt", ".yaml", ".yml", ".json",
                 ".in", ".service", ".ndjson", ".clang-format")
SKIP_DIRS = {".git", "vmlinux"}


def repo_files(root):
    """Tracked files (git), else every file outside build trees."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z"], capture_output=True,
                             check=True).stdout.decode()
        files = [f for f in out.split("\0") if f]
        if files:
            return files
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")]
        files += [os.path.relpath(os.path.join(dirpath, n), root) for n in names]
    return files


def is_text(rel):
    base = os.path.basename(rel)
    return (rel.endswith(TEXT_SUFFIXES) or base in ("CMakeLists.txt", "setup.sh", "run")
            or "/debian/" in "/" + rel or "." not in base)


def strip_code_spans(line):
    return re.sub(r"`[^`]*`", "", line)


def problems(root):
    """(file, line, why) for every reference that leaves the repository."""
    bad = []
    real_root = os.path.realpath(root)
    for rel in sorted(repo_files(root)):
        path = os.path.join(root, rel)
        if not is_text(rel) or "/vmlinux/" in "/" + rel or not os.path.isfile(path):
            continue
        with open(path, errors="replace") as f:
            text = f.read()
        if "\0" in text:
            continue
        in_fence = False
        for n, line in enumerate(text.splitlines(), 1):
            for pattern, why in FOREIGN:
                if pattern.search(line):
                    bad.append((rel, n, f"refers to {why}: {line.strip()[:100]}"))
            if not rel.endswith(".md"):
                continue
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
            if in_fence:
                continue
            for m in MD_LINK.finditer(strip_code_spans(line)):
                target = (m.group(1) or m.group(2)).split("#", 1)[0]
                if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue  # an anchor in the same page, a URL, mailto:
                dest = os.path.realpath(os.path.join(os.path.dirname(path), target))
                if os.path.commonpath([dest, real_root]) != real_root:
                    bad.append((rel, n, f"links outside the repository: {target}"))
                elif not os.path.exists(dest):
                    bad.append((rel, n, f"links to a file that does not exist: {target}"))
    return bad


def self_check(tmp):
    """The checker must catch each kind of reference, or it proves nothing."""
    files = {
        "README.md": "see [dev](docs/dev.md) and [x](../outside.md)\n"
                     "and [gone](docs/missing.md), [web](https://example.org/a.md)\n",
        "docs/dev.md": "# dev\n[back](../README.md#top) [self](#dev)\n"
                       "```\n[not a link](../in/a/fence.md)\n```\n",
        "test/CMakeLists.txt": "# labels (" + "DES" + "IGN.md)\n",
        "tools/x.sh": "cat ../../" + "sha" + "red/notes\n",
        "agent/a.c": "/* see /" + "wo" + "rk/main/x */\n",
    }
    for rel, text in files.items():
        os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(tmp, rel), "w") as f:
            f.write(text)
    found = sorted((f, n) for f, n, _ in problems(tmp))
    want = sorted([("README.md", 1), ("README.md", 2), ("test/CMakeLists.txt", 1),
                   ("tools/x.sh", 1), ("agent/a.c", 1)])
    if found != want:
        sys.exit(f"references self-check failed: found {found}, expected {want}")


def main():
    import tempfile
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    with tempfile.TemporaryDirectory() as tmp:
        self_check(tmp)
    bad = problems(root)
    for f, n, why in bad:
        print(f"{f}:{n}: {why}")
    if bad:
        print(f"{len(bad)} reference(s) outside the repository; docs/development.md is where "
              "the design lives")
        return 1
    print("no file refers to anything outside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
