#!/usr/bin/env bash
# Drill: cut the leader off together with a minority, and write into it after it is deposed.
#
# With check-quorum (the default) a cut-off leader steps down within two election timeouts, before
# a command from a new process can reach it. So this drill runs its cluster from a copy of the
# cluster file with check_quorum = false: there the deposed leader keeps leading its minority
# until it hears of the newer term, the case Raft's commit rule alone must make safe. The deposed
# leader takes a command into its log and can never commit it (a deadline, exit 4, where a refusal
# would be exit 1); a read is never answered by it. The majority elects a new leader and commits.
# After `heal` the old leader steps down, every node agrees, and the command it took was never
# applied. (The check-quorum step-down itself is tested in tests/e2e/test_raftctl_cluster.py.)
source "$(dirname "$0")/lib.sh"

# The copy: the same nodes, ports and state directory (so whoever cleans up after the drill finds
# its processes), only check_quorum differs.
state_dir=$(sed -n 's/^state_dir[[:space:]]*=[[:space:]]*"\([^"]*\)".*$/\1/p' "$RAFTCTL_CONFIG")
state_dir=${state_dir:-.raftctl}
case "$state_dir" in /*) ;; *) state_dir="$(cd "$(dirname "$RAFTCTL_CONFIG")" && pwd)/$state_dir" ;; esac
awk -v state_dir="$state_dir" '
    /^(check_quorum|state_dir)[ \t]*=/ { next }
    { print }
    /^\[cluster\][ \t]*$/ { print "check_quorum = false"; print "state_dir = \"" state_dir "\"" }
' "$RAFTCTL_CONFIG" >"$DRILL_TMP/cluster.toml"
export RAFTCTL_CONFIG="$DRILL_TMP/cluster.toml"

# node_field NODE FIELD: FIELD of NODE's row in `raftctl status NODE -o json`.
node_field() { raftctl status "$1" -o json | json_field "nodes.0.$2"; }

step "start the cluster (check_quorum = false)"
start_cluster
raftctl wait --leader
raftctl run-command incr 1

count=$(node_ids | wc -w)
side="leader"
if [ "$count" -ge 5 ]; then side="leader,follower"; fi
old=$(raftctl leader)
old_term=$(node_field "$old" term)
step "cut $old off with a minority ($side of $count nodes)"
raftctl partition "$side"

step "the majority elects a new leader"
new="$old"
for _ in $(seq 120); do
    new=$(raftctl leader 2>/dev/null || true)
    if [ -n "$new" ] && [ "$new" != "$old" ]; then break; fi
    sleep 0.25
done
[ -n "$new" ] && [ "$new" != "$old" ] || fail "the majority elected no new leader"
echo "new leader: $new (term $(node_field "$new" term)); $old still says: $(node_field "$old" role) in term $old_term"
[ "$(node_field "$old" role)" = "leader" ] || fail "$old stepped down: nothing to write into"

step "the deposed $old takes a command it can never commit"
last_before=$(node_field "$old" last_index)
status=0
raftctl run-command --node "$old" --no-follow --timeout 3 incr 100 || status=$?
[ "$status" -eq 4 ] || fail "expected a deadline (exit 4: taken, never committed), got exit $status"
last=$(node_field "$old" last_index); commit=$(node_field "$old" commit_index)
echo "   $old's log: $last_before -> $last entries, commit index $commit"
[ "$last" -gt "$last_before" ] && [ "$last" -gt "$commit" ] || fail "$old did not take the command into its log"

step "the deposed leader does not answer reads"
must_fail raftctl query --node "$old" --no-follow --timeout 1 get

step "the majority commits (at $new: $old, still claiming to lead, may be the first a client finds)"
raftctl run-command --node "$new" --timeout 5 incr 10

step "heal: $old steps down, everyone converges, and its command never applied"
raftctl heal
raftctl wait --converged --timeout 30
raftctl query get --expect 11
[ "$(node_field "$old" role)" = "follower" ] || fail "$old still leads after heal"
