#!/usr/bin/env bash
# A stack started under one build profile is found, restarted and stopped from a command run
# under another (`STACK_PROFILE=release make up`, then `make test` or `make down`). Before the
# stack recorded which binary each service runs, the second `up` refused with "port 8081 is in
# use by a process not started by dev/stack.sh" and `down` left the first profile's services
# running. Uses copies of the debug binaries as the "other" profile, so nothing is rebuilt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
ALT=profile-check
ALT_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/$ALT
DEBUG_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/debug

fail() {
	echo "profiles: FAILED: $*" >&2
	exit 1
}
runs() { pgrep -f "^$1( |$)" >/dev/null; }

cleanup() {
	./dev/stack.sh down >/dev/null 2>&1 || true
	rm -rf "$ALT_DIR"
}
trap cleanup EXIT

[[ -x $DEBUG_DIR/orders ]] || cargo build --workspace --bins
mkdir -p "$ALT_DIR"
cp "$DEBUG_DIR"/{orders,payments,gateway} "$ALT_DIR/"

STACK_PROFILE=$ALT STACK_SKIP_BUILD=1 ./dev/stack.sh up >/dev/null
runs "$ALT_DIR/orders" || fail "the $ALT stack did not start"

# The debug profile takes over: the other profile's services are restarted, not refused.
STACK_SKIP_BUILD=1 ./dev/stack.sh up >/dev/null || fail "up under the debug profile refused"
runs "$ALT_DIR/orders" && fail "the $ALT services still run after the debug up"
runs "$DEBUG_DIR/orders" || fail "the debug services did not start"

# And a command under yet another profile still stops them.
STACK_PROFILE=$ALT ./dev/stack.sh down >/dev/null
for name in orders payments gateway; do
	runs "$DEBUG_DIR/$name" && fail "down under $ALT left the debug $name running"
done
echo "profiles: a stack of one profile is restarted and stopped from another"
