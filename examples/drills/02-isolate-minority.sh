#!/usr/bin/env bash
# Drill: cut a follower off from the rest.
#
# The majority keeps its leader and keeps committing; the isolated node falls behind (the
# cluster cannot converge while it is cut off). After `heal` it catches up and every node agrees.
source "$(dirname "$0")/lib.sh"

step "start the cluster"
start_cluster
raftctl wait --leader
raftctl run-command incr 5

step "isolate one follower (a minority)"
isolated=$(raftctl partition follower --json | json_field partition.0.0)
echo "isolated: $isolated"

step "the majority keeps committing"
for i in 1 2 3; do raftctl run-command --timeout 5 incr 1; done
raftctl query get --expect 8

step "$isolated cannot keep up while cut off"
must_fail raftctl wait --converged --timeout 1

step "heal: $isolated catches up"
raftctl heal
raftctl wait --converged --timeout 15
raftctl query get --expect 8
