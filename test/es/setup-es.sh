#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The Elasticsearch the `es` tests run against: the integ-test-zip distribution
# from Maven Central (a minimal node: no ILM, no data stream API, no bundled
# JDK), run on the system Java 17 by the test fixture (test/es/eslib.py).
#
#   test/es/setup-es.sh install   download (checksum verified) and unpack, create the
#                                 system user autotrace-es that runs it; idempotent
#   test/es/setup-es.sh home      print ES_HOME (installs first when missing)
#
# Environment: AUTOTRACE_ES_CACHE (default /var/cache/autotrace-test/elasticsearch),
# AUTOTRACE_ES_VERSION (default below).
set -euo pipefail

VERSION=${AUTOTRACE_ES_VERSION:-8.19.4}
CACHE=${AUTOTRACE_ES_CACHE:-/var/cache/autotrace-test/elasticsearch}
BASE=https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch
ZIP=elasticsearch-$VERSION.zip
HOME_DIR=$CACHE/elasticsearch-$VERSION
ES_USER=autotrace-es

# Elasticsearch refuses to run as root; the tests run it as this system user.
ensure_user() {
	if ! id -u "$ES_USER" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$ES_USER"
	fi
}

install() {
	ensure_user
	if [ -x "$HOME_DIR/bin/elasticsearch" ] && [ -f "$HOME_DIR/.autotrace-verified" ]; then
		return 0
	fi
	mkdir -p "$CACHE"
	# one installer at a time (ctest and a developer may race)
	exec 9>"$CACHE/.lock"
	flock 9
	if [ -x "$HOME_DIR/bin/elasticsearch" ] && [ -f "$HOME_DIR/.autotrace-verified" ]; then
		return 0
	fi
	tmp=$(mktemp -d "$CACHE/.dl.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "setup-es.sh: downloading Elasticsearch $VERSION (integ-test-zip) from Maven Central" >&2
	curl -fsSL --retry 3 -o "$tmp/$ZIP" "$BASE/$VERSION/$ZIP"
	curl -fsSL --retry 3 -o "$tmp/$ZIP.sha512" "$BASE/$VERSION/$ZIP.sha512" ||
		curl -fsSL --retry 3 -o "$tmp/$ZIP.sha1" "$BASE/$VERSION/$ZIP.sha1"
	if [ -f "$tmp/$ZIP.sha512" ]; then
		echo "$(tr -d ' \n' <"$tmp/$ZIP.sha512")  $tmp/$ZIP" | sha512sum -c --quiet -
	else
		echo "$(tr -d ' \n' <"$tmp/$ZIP.sha1")  $tmp/$ZIP" | sha1sum -c --quiet -
	fi
	unzip -q "$tmp/$ZIP" -d "$tmp/unpacked"
	rm -rf "$HOME_DIR"
	mv "$tmp/unpacked/elasticsearch-$VERSION" "$HOME_DIR"
	# read-only for everyone but root: each test run copies config/ and data to its own dir
	chmod -R go-w "$HOME_DIR"
	chmod -R a+rX "$HOME_DIR"
	touch "$HOME_DIR/.autotrace-verified"
	echo "setup-es.sh: Elasticsearch $VERSION in $HOME_DIR" >&2
}

case "${1:-}" in
install)
	install
	;;
home)
	install
	echo "$HOME_DIR"
	;;
*)
	sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
