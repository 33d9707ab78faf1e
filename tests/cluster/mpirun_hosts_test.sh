#!/usr/bin/env bash
# Two emulated hosts with two interfaces each (eth1 reaches nobody), mpirun through
# scripts/launch.sh:
#   - an interface that does not exist fails at start, naming it and the ones there are, both in
#     launch.sh and in facetrain itself on every host;
#   - a host that does not answer at start is a clear error within seconds;
#   - 2 hosts x 2 ranks on eth0 train exactly the losses of the reference 1 host x 4 ranks, and
#     every rank logs its host, local rank and local world size.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
work=$CLUSTER_WORK/mpirun_hosts
rm -rf "$work" && mkdir -p "$work"
start_cluster "mh$$" 2 --interfaces 2
hostfile "$state/hosts" 2 node1 node2

echo "--- an interface that does not exist"
on node1 "$launch" --hostfile "$state/hosts" --interface eth9 -- $(train_args "$work/none") \
  >"$work/eth9.log" 2>&1
code=$?
cat "$work/eth9.log"
check "launch.sh --interface eth9 exits 2" [ "$code" = 2 ]
check "it names eth9 and the interfaces node1 has" \
  grep -q "interface 'eth9' does not exist on node1; it has: eth0 eth1 lo" "$work/eth9.log"
t0=$(now)
on node1 timeout 60 mpirun -np 4 --map-by ppr:2:node --hostfile "$state/hosts" \
  --mca oob_tcp_if_include eth0 -x FACETRAIN_IFNAME=eth9 \
  "$FACETRAIN_BIN" train $(train_args "$work/none") >"$work/eth9_mpirun.log" 2>&1
code=$?
took=$(elapsed "$t0" "$(now)")
grep -m2 "eth9" "$work/eth9_mpirun.log"
check "plain mpirun with FACETRAIN_IFNAME=eth9 fails (exit $code) in $took s" \
  eval '[ "$code" != 0 ] && [ "$code" != 124 ] && within "$took" 20'
check "facetrain names eth9, the host and its interfaces" \
  grep -qE "network interface 'eth9' \(dist.interface / FACETRAIN_IFNAME\) does not exist on node[12]; it has: eth0, eth1, lo" \
  "$work/eth9_mpirun.log"

echo "--- a host that does not answer at start"
"$cluster" cut "$name" node2
t0=$(now)
on node1 timeout 60 "$launch" --hostfile "$state/hosts" --interface eth0 -- \
  $(train_args "$work/none") >"$work/unreachable.log" 2>&1
code=$?
took=$(elapsed "$t0" "$(now)")
"$cluster" heal "$name" node2
cat "$work/unreachable.log"
check "launch.sh refuses to start (exit $code) within 15 s ($took s)" \
  eval '[ "$code" = 1 ] && within "$took" 15'
check "it names the host and why" grep -q "host node2 does not answer: ssh: connect to host node2" \
  "$work/unreachable.log"
check "no process was left behind" [ -z "$(job_procs)" ]

echo "--- 2 hosts x 2 ranks against 1 host x 4 ranks"
FACETRAIN_IFNAME=eth0 on node1 timeout 300 "$launch" --hostfile "$state/hosts" --gpus-per-node 2 -- \
  $(train_args "$work/two_hosts") >"$work/two_hosts.log" 2>&1
code=$?
grep -E "launch.sh|placement" "$work/two_hosts.log"
check "the run finished" [ "$code" = 0 ]
check "its losses are the reference's" same_losses "$work/two_hosts" "$CLUSTER_WORK/reference" 1e-5
check "rank 0 logs the placement" grep -q \
  "placement: 4 ranks on 2 hosts: ranks 0-1 on node1, ranks 2-3 on node2" "$work/two_hosts.log"
for r in 0 1 2 3; do
  check "rank $r logs its local rank $((r % 2)) of 2 on node$((r / 2 + 1))" grep -q \
    "this rank is local rank $((r % 2)) of 2 on node$((r / 2 + 1))" "$work/two_hosts/logs/rank-$r.log"
done
finish
