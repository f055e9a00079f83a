#!/usr/bin/env bash
# Drill: restart every node, one at a time, leader included.
#
# After each restart the cluster commits again (run-command retries while an election runs) and
# converges before the next node goes down; no committed increment is lost along the way.
source "$(dirname "$0")/lib.sh"

step "start the cluster"
start_cluster
raftctl wait --leader
raftctl run-command incr 1
expected=1

for node in $(node_ids); do
    step "restart $node"
    raftctl restart "$node"
    expected=$((expected + 1))
    raftctl run-command --timeout 10 incr 1 --expect "$expected"
    raftctl wait --converged --timeout 15
done

step "every increment survived"
raftctl query get --expect "$expected"
