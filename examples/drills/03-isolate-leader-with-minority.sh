#!/usr/bin/env bash
# Drill: cut the leader off together with a minority.
#
# The old leader must stop serving: a command sent to it alone never commits and a read is never
# answered by it. The majority elects a new leader and commits. After `heal` every node agrees,
# and the command the old leader took while cut off was never applied.
source "$(dirname "$0")/lib.sh"

step "start the cluster"
start_cluster
raftctl wait --leader
raftctl run-command incr 1

count=$(node_ids | wc -w)
side="leader"
if [ "$count" -ge 5 ]; then side="leader,follower"; fi
old=$(raftctl leader)
step "cut $old off with a minority ($side of $count nodes)"
raftctl partition "$side"

step "$old takes a command it can never commit"
must_fail raftctl run-command --node "$old" --no-follow --timeout 2 incr 100

step "the majority elects a new leader"
raftctl wait --leader --timeout 10
new=$(raftctl leader)
[ "$new" != "$old" ] || fail "$old still leads a majority"
echo "new leader: $new"

step "the deposed leader does not answer reads"
must_fail raftctl query --node "$old" --no-follow --timeout 1 get

step "the majority commits"
raftctl run-command --timeout 5 incr 10

step "heal: everyone converges, and the old leader's command never applied"
raftctl heal
raftctl wait --converged --timeout 15
raftctl query get --expect 11
