# Shared by the drills: strict mode, the cluster file, a time limit, cleanup and small helpers.
#
# A drill runs as `examples/drills/NAME.sh [CLUSTER_FILE]` (or with RAFTCTL_CONFIG set), from any
# directory. It starts
# its own cluster with `raftctl up`, checks every outcome through exit codes, `raftctl wait` and
# `raftctl query --expect`, and always ends with `raftctl down --purge`. Any failed check stops
# the drill with a non-zero exit status (set -e); so does running out of time (DRILL_TIMEOUT
# seconds, default 120).

set -euo pipefail

# Runnable from any directory: without a cluster file named (argument, $RAFTCTL_CONFIG) or one in
# the current directory, the repository's own cluster.toml is used; without `raftctl` on PATH,
# the repository's raftctl is run with python3.
DRILLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$DRILLS_DIR/../.." && pwd)"
if [ -z "${1:-}" ] && [ -z "${RAFTCTL_CONFIG:-}" ] && [ ! -e cluster.toml ]; then
    RAFTCTL_CONFIG="$REPO_DIR/cluster.toml"
fi
export RAFTCTL_CONFIG="${1:-${RAFTCTL_CONFIG:-cluster.toml}}"
if ! command -v raftctl >/dev/null 2>&1; then
    raftctl() { PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}" python3 -m raftctl "$@"; }
fi
DRILL_TIMEOUT="${DRILL_TIMEOUT:-120}"
DRILL_NAME="$(basename "$0" .sh)"
DRILL_TMP="$(mktemp -d)"

step() { printf '\n== %s\n' "$*"; }
fail() { echo "DRILL $DRILL_NAME FAILED: $*" >&2; exit 1; }

# must_fail CMD...: CMD has to fail (any non-zero exit status); prints the status it got.
must_fail() {
    local status=0
    "$@" || status=$?
    if [ "$status" -eq 0 ]; then fail "expected this to fail: $*"; fi
    echo "   (failed as expected, exit $status)"
}

# node_ids: the node ids of the cluster file, one line.
node_ids() {
    raftctl status --json | python3 -c 'import json, sys; print(" ".join(n["id"] for n in json.load(sys.stdin)["nodes"]))'
}

# json_field PATH: read a JSON document on stdin and print the value at PATH (e.g. partition.0.0).
json_field() {
    python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value)' "$1"
}

# start_cluster: `raftctl up` on a cluster that must not be running yet (the drill purges it at
# the end, so it refuses to touch a cluster someone else started).
start_cluster() {
    if raftctl status >/dev/null 2>&1; then
        DRILL_NOT_OURS=1
        fail "the cluster of $RAFTCTL_CONFIG is already running; drills start (and purge) their own"
    fi
    raftctl up
}

cleanup() {
    local status=$?
    trap - EXIT TERM INT
    [ -n "${DRILL_WATCHDOG:-}" ] && kill "$DRILL_WATCHDOG" 2>/dev/null || true
    if declare -F drill_cleanup >/dev/null; then drill_cleanup || true; fi
    if [ -z "${DRILL_NOT_OURS:-}" ]; then raftctl down --purge --grace 2 >/dev/null 2>&1 || true; fi
    rm -rf "$DRILL_TMP"
    if [ "$status" -eq 0 ]; then echo; echo "DRILL $DRILL_NAME PASSED"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'echo "DRILL $DRILL_NAME: out of time or interrupted" >&2; exit 124' TERM INT

# The watchdog: after DRILL_TIMEOUT seconds, stop the drill (every raftctl call is bounded too).
( sleep "$DRILL_TIMEOUT" && kill -TERM $$ ) </dev/null >/dev/null 2>&1 &
DRILL_WATCHDOG=$!
