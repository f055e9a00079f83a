#!/usr/bin/env bash
# Drill: kill the leader while clients are writing.
#
# Two clients increment the counter in a loop. We SIGKILL the leader. The others must elect a new
# leader and keep committing; the killed node comes back, catches up, and every increment a
# client saw acknowledged is in the counter (a command whose answer was lost may have been
# retried, so the counter may be higher, never lower).
source "$(dirname "$0")/lib.sh"

step "start the cluster"
start_cluster
raftctl wait --leader

step "two clients increment the counter in a loop"
STOP="$DRILL_TMP/stop"
client() {  # $1: file that gets one line per acknowledged increment
    while [ ! -e "$STOP" ]; do
        if raftctl run-command --quiet --timeout 5 incr 1 >/dev/null 2>&1; then echo >>"$1"; fi
    done
}
client "$DRILL_TMP/acks.1" & CLIENT1=$!
client "$DRILL_TMP/acks.2" & CLIENT2=$!
drill_cleanup() { touch "$STOP"; wait "$CLIENT1" "$CLIENT2" 2>/dev/null || true; }
sleep 1.5

old=$(raftctl leader)
step "kill the leader, $old"
raftctl kill "$old"

step "the survivors elect a new leader"
raftctl wait --leader --timeout 10
new=$(raftctl leader)
[ "$new" != "$old" ] || fail "$old still leads after being killed"
echo "new leader: $new"

step "commands keep committing under $new"
raftctl run-command --timeout 5 incr 1
echo >>"$DRILL_TMP/acks.0"
sleep 1.5
touch "$STOP"; wait "$CLIENT1" "$CLIENT2"

step "$old comes back and catches up"
raftctl start "$old"
raftctl wait --converged --timeout 15

acked=$(cat "$DRILL_TMP"/acks.* 2>/dev/null | wc -l)
value=$(raftctl query --quiet get)
echo "acknowledged increments: $acked; counter: $value"
[ "$acked" -gt 0 ] || fail "no increment was acknowledged"
[ "$value" -ge "$acked" ] || fail "the counter ($value) lost acknowledged increments ($acked)"
