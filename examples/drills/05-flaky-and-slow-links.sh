#!/usr/bin/env bash
# Drill: slow, lossy and duplicating links.
#
# The leader's links get 30±20 ms of delay, a follower's lose 20% of messages, another follower's
# deliver 10% twice. Commands still commit exactly once each (each run-command resends in a client
# session, so a copy committed twice is applied once); after `heal --all` every node agrees.
source "$(dirname "$0")/lib.sh"

step "start the cluster"
start_cluster
raftctl wait --leader

leader=$(raftctl leader)
followers=($(node_ids | tr ' ' '\n' | grep -vx "$leader"))
step "slow the leader ($leader), make ${followers[0]} lossy and ${followers[1]} duplicating"
raftctl slow "$leader" --delay 30 --jitter 20
raftctl flaky "${followers[0]}" --drop 20
raftctl duplicate "${followers[1]}" --pct 10
raftctl status

step "commands still commit"
for i in 1 2 3 4 5; do raftctl run-command --timeout 10 incr 1; done
raftctl query --timeout 10 get --expect 5

step "clear every fault; the cluster converges"
raftctl heal --all
raftctl wait --converged --timeout 15
raftctl query get --expect 5
