#!/usr/bin/env bash
# An emulated cluster on one machine, for tests of multi-host jobs.
#
# Each host is a network namespace with its own UTS namespace (hostname) and mount namespace
# (a private /tmp and the cluster's own /etc/hosts), joined to the others by a veth pair on a
# bridge. Addresses are in the loopback range (127.100.K.0/24, K the cluster's index), routed
# off loopback with route_localnet, so nothing can leave the machine. Host 0 is "ctl" (the
# scheduler's controller); hosts 1..N are node1..nodeN. With --interfaces 2 every node also has
# eth1 on a second bridge that is down: an interface that exists and carries an address but
# reaches nobody.
#
#   cluster.sh check                       exit 0 if clusters can be made here, else 77 + reason
#   cluster.sh up NAME N [--interfaces 2]  make (or remake) cluster NAME with N nodes
#   cluster.sh down NAME                   end every process of its hosts and remove it all
#   cluster.sh exec NAME HOST CMD...       run CMD on HOST, in the caller's working directory
#   cluster.sh rsh-agent NAME              the path of an ssh stand-in for mpirun (plm_rsh_agent)
#   cluster.sh addr NAME HOST [IF]         HOST's address (on eth0, or IF)
#   cluster.sh cut NAME HOST | heal NAME HOST      take HOST's link down / up (a partition)
#   cluster.sh signal NAME HOST SIG        send SIG to every process on HOST (KILL: host death,
#                                          STOP: a stalled host, CONT)
#   cluster.sh procs NAME [HOST]           the PIDs of processes running on the host(s)
#   cluster.sh slurm-up NAME [SLURM_CONF_EXTRA]    munged, slurmctld on ctl, one slurmd per node
#   cluster.sh state-dir NAME              where the cluster keeps its files
#
# NAME is unique per test, so tests can run side by side; `up` of an existing NAME tears the
# old one down first, and `down` is safe to repeat. Nothing here survives `down`.
set -euo pipefail

root_dir=${FACETRAIN_CLUSTER_ROOT:-/run/facetrain-cluster}
self=$(readlink -f "${BASH_SOURCE[0]}")

die() { echo "cluster.sh: $*" >&2; exit 1; }

check() {
  [ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, veth, bridges)"; return 77; }
  for tool in ip nsenter unshare setsid ping; do
    command -v "$tool" >/dev/null || { echo "needs $tool"; return 77; }
  done
  local probe="ftc-probe-$$"
  ip netns add "$probe" 2>/dev/null || { echo "cannot create network namespaces"; return 77; }
  ip netns del "$probe"
  unshare --uts --mount true 2>/dev/null || { echo "cannot create UTS/mount namespaces"; return 77; }
}

state() { echo "$root_dir/$1"; }
hosts_of() { cat "$(state "$1")/hostnames"; }
holder() {
  local f
  f="$(state "$1")/$2/pid"
  [ -f "$f" ] || die "$1: no host '$2' (hosts: $(hosts_of "$1" | tr '\n' ' '))"
  cat "$f"
}
index() { cat "$(state "$1")/index"; }
host_number() { case "$2" in ctl) echo 0 ;; node*) echo "${2#node}" ;; *) die "$1: bad host '$2'" ;; esac; }
veth() { echo "ft$(index "$1")h$(host_number "$1" "$2")${3:-}"; }

# A free cluster index in 1..200, claimed atomically with mkdir.
claim_index() {
  mkdir -p "$root_dir/.index"
  local k
  for k in $(seq 1 200); do
    if mkdir "$root_dir/.index/$k" 2>/dev/null; then
      echo "$1" >"$root_dir/.index/$k/owner"
      echo "$k"
      return
    fi
  done
  die "no free cluster index (200 clusters exist under $root_dir)"
}

# Starts the process that holds HOST's UTS and mount namespaces inside its network namespace.
start_holder() {
  local name=$1 host=$2 dir
  dir="$(state "$name")/$host"
  mkdir -p "$dir/tmp"
  chmod 1777 "$dir/tmp"
  # nsenter --net rather than `ip netns exec`, which remounts /sys and hides the cgroup tree.
  setsid nsenter --net="/run/netns/$(netns "$name" "$host")" \
    unshare --uts --mount --propagation private \
    bash -c 'hostname "$1"; mount --bind "$2/tmp" /tmp; mount --bind "$3" /etc/hosts
             echo $$ >"$2/pid.new"; mv "$2/pid.new" "$2/pid"; exec sleep infinity' \
    holder "$host" "$dir" "$(state "$name")/etc-hosts" </dev/null >/dev/null 2>&1 &
  local i
  for i in $(seq 1 100); do
    [ -f "$dir/pid" ] && return
    sleep 0.05
  done
  die "$name: host $host did not start"
}

netns() { echo "ft$(index "$1")-$2"; }

add_host() {
  local name=$1 host=$2 k n ns
  k=$(index "$name")
  n=$(host_number "$name" "$host")
  ns=$(netns "$name" "$host")
  ip netns add "$ns"
  ip link add "$(veth "$name" "$host")" type veth peer name eth0 netns "$ns"
  ip link set "$(veth "$name" "$host")" master "ftb$k" up
  ip -n "$ns" link set lo up
  # All of 127/8 is local through one loopback route: drop it, so that only 127.0.0.1 (which
  # has its own route) stays local and the cluster's addresses are routed like any other.
  ip -n "$ns" route del local 127.0.0.0/8 dev lo table local
  nsenter --net="/run/netns/$ns" sysctl -qw net.ipv4.conf.all.route_localnet=1
  ip -n "$ns" addr add "127.100.$k.$((10 + n))/24" dev eth0
  ip -n "$ns" link set eth0 up
  if [ "$(cat "$(state "$name")/interfaces")" = 2 ] && [ "$host" != ctl ]; then
    ip link add "$(veth "$name" "$host" x)" type veth peer name eth1 netns "$ns"
    ip link set "$(veth "$name" "$host" x)" master "ftb${k}x" up
    ip -n "$ns" addr add "127.101.$k.$((10 + n))/24" dev eth1
    ip -n "$ns" link set eth1 up
  fi
  start_holder "$name" "$host"
}

up() {
  local name=$1 count=$2 interfaces=1
  shift 2
  [ "${1:-}" = --interfaces ] && interfaces=$2
  [[ "$name" =~ ^[A-Za-z0-9_-]{1,40}$ ]] || die "bad cluster name '$name'"
  [[ "$count" =~ ^[1-9]$ ]] || die "bad host count '$count' (1..9)"
  local reason
  reason=$(check) || { echo "cluster.sh: cannot emulate hosts here: $reason" >&2; exit 77; }
  [ -d "$(state "$name")" ] && down "$name"
  mkdir -p "$(state "$name")"
  # A failed set-up leaves nothing behind.
  partial_cluster=$name
  trap '[ -z "${partial_cluster:-}" ] || down "$partial_cluster"' EXIT
  claim_index "$name" >"$(state "$name")/index"
  echo "$interfaces" >"$(state "$name")/interfaces"
  local k
  k=$(index "$name")
  {
    echo "127.0.0.1 localhost"
    echo "127.100.$k.10 ctl"
    for i in $(seq 1 "$count"); do echo "127.100.$k.$((10 + i)) node$i"; done
  } >"$(state "$name")/etc-hosts"
  : >"$(state "$name")/hostnames"
  ip link add "ftb$k" type bridge
  ip link set "ftb$k" up
  if [ "$interfaces" = 2 ]; then
    # The second network exists but carries nothing: its bridge stays down.
    ip link add "ftb${k}x" type bridge
  fi
  for host in ctl $(seq -f 'node%g' 1 "$count"); do
    add_host "$name" "$host"
    echo "$host" >>"$(state "$name")/hostnames"
  done
  write_rsh_agent "$name"
  partial_cluster=""
}

# PIDs of every process in HOST's namespaces (by its UTS namespace), the holder excepted.
host_pids() {
  local name=$1 host=$2 pid uts
  pid=$(holder "$name" "$host")
  uts=$(readlink "/proc/$pid/ns/uts" 2>/dev/null) || return 0
  # Processes come and go while find walks /proc: its complaints about vanished ones are noise.
  { find /proc/[0-9]*/ns/uts -maxdepth 0 -printf '%l %p\n' 2>/dev/null || true; } |
    awk -v uts="$uts" -v holder="$pid" '$1 == uts { split($2, p, "/"); if (p[3] != holder) print p[3] }'
}

procs() {
  local name=$1 host
  for host in ${2:-$(hosts_of "$name")}; do host_pids "$name" "$host"; done
}

signal_host() {
  local name=$1 host=$2 sig=$3 p
  for p in $(host_pids "$name" "$host"); do kill -s "$sig" "$p" 2>/dev/null || true; done
}

down() {
  local name=$1 dir k host
  dir=$(state "$name")
  [ -d "$dir" ] || return 0
  k=$(cat "$dir/index" 2>/dev/null || echo "")
  local hosts holders=() i
  hosts=$(ls -d "$dir"/*/ 2>/dev/null | xargs -r -n1 basename || true)
  for host in $hosts; do
    [ -f "$dir/$host/pid" ] || continue
    signal_host "$name" "$host" CONT
    signal_host "$name" "$host" KILL
    holders+=("$(cat "$dir/$host/pid")")
  done
  # Wait until every process of the hosts has gone (a namespace lives as long as they do).
  for i in $(seq 1 100); do
    local left=""
    for host in $hosts; do [ -f "$dir/$host/pid" ] && left+=$(host_pids "$name" "$host"); done
    [ -z "$left" ] && break
    sleep 0.05
  done
  for pid in "${holders[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${holders[@]}"; do
    for i in $(seq 1 100); do [ -e "/proc/$pid" ] || break; sleep 0.05; done
  done
  if [ -n "$k" ]; then
    for link in $(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^ft${k}h[0-9]+x?$" || true); do
      ip link del "$link" 2>/dev/null || true
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^ft$k-" || true); do ip netns del "$ns"; done
    ip link del "ftb$k" 2>/dev/null || true
    ip link del "ftb${k}x" 2>/dev/null || true
    rm -rf "$root_dir/.index/$k"
  fi
  # A killed munged or slurmd may still hold a file for a moment.
  rm -rf "$dir" 2>/dev/null || { sleep 1; rm -rf "$dir"; }
}

enter() {
  local name=$1 host=$2
  shift 2
  local pid
  pid=$(holder "$name" "$host")
  # Entering a mount namespace moves to its root: come back to the caller's directory.
  exec nsenter -t "$pid" --net --uts --mount -- env -C "$PWD" "$@"
}

# The ssh stand-in: reaches the target over the emulated network first (one ping, as ssh would
# connect), so a host cut off before the command fails like an unreachable one ("No route to
# host", exit 255). Then, like sshd, it runs the command on that host detached from the caller's
# process tree (ending the caller does not end the command), forwards its output, and exits
# with its exit code; if the command's processes vanish without one (the host was killed), the
# stand-in exits 255 as ssh does when the connection is reset.
write_rsh_agent() {
  local name=$1 agent
  agent="$(state "$name")/rsh"
  cat >"$agent" <<EOF
#!/usr/bin/env bash
# ssh stand-in for cluster $name: rsh [ssh options] HOST COMMAND...
set -u
while [ \$# -gt 0 ]; do case "\$1" in -x|-n|-T|-q) shift ;; -o) shift 2 ;; *) break ;; esac; done
host=\$1; shift
addr=\$(awk -v h="\$host" '\$2 == h {print \$1}' "$(state "$name")/etc-hosts")
[ -n "\$addr" ] || { echo "ssh: Could not resolve hostname \$host" >&2; exit 255; }
if ! ping -c 1 -W 2 "\$addr" >/dev/null 2>&1; then
  echo "ssh: connect to host \$host port 22: No route to host" >&2
  exit 255
fi
[ \$# -gt 0 ] || set -- true
session="$(state "$name")/\$host/ssh.\$\$.\$RANDOM"
"$self" exec "$name" "\$host" setsid -f bash -c 'echo \$\$ >"\$0.pid"; bash -c "\$1"; echo \$? >"\$0.rc"' \\
  "\$session" "\$*"
while [ ! -f "\$session.rc" ]; do
  pid=\$(cat "\$session.pid" 2>/dev/null)
  if [ -n "\$pid" ] && [ ! -e "/proc/\$pid" ] && [ ! -f "\$session.rc" ]; then
    echo "Connection to \$host closed by remote host." >&2
    rm -f "\$session.pid"
    exit 255
  fi
  sleep 0.1
done
rc=\$(cat "\$session.rc")
rm -f "\$session.pid" "\$session.rc"
exit "\$rc"
EOF
  chmod +x "$agent"
}

addr() {
  local name=$1 host=$2 ifname=${3:-eth0} k n
  k=$(index "$name")
  n=$(host_number "$name" "$host")
  case "$ifname" in
    eth0) echo "127.100.$k.$((10 + n))" ;;
    eth1) echo "127.101.$k.$((10 + n))" ;;
    *) die "no interface $ifname" ;;
  esac
}

# Brings HOST's link back and waits until every host reaches it again (the neighbour entries
# that failed while it was away are dropped, rather than waiting for them to expire).
heal() {
  local name=$1 host=$2 i other target
  ip link set "$(veth "$name" "$host")" up
  target=$(addr "$name" "$host")
  for other in $(hosts_of "$name"); do
    [ "$other" = "$host" ] && continue
    ip -n "$(netns "$name" "$other")" neigh flush all
    ip -n "$(netns "$name" "$host")" neigh flush all
    for i in $(seq 1 50); do
      "$self" exec "$name" "$other" ping -c 1 -W 1 "$target" >/dev/null 2>&1 && continue 2
      sleep 0.1
    done
    die "$name: $host is still unreachable from $other after its link came back"
  done
}

slurm_up() {
  local name=$1 extra=${2:-} dir k host nodes
  dir=$(state "$name")
  k=$(index "$name")
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null ||
    die "Slurm is not installed (slurmctld, slurmd, munge)"
  mkdir -p "$dir/munge" "$dir/slurm/ctld"
  chmod 700 "$dir/munge"
  head -c 1024 /dev/urandom >"$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  # On the controller host, like the rest of Slurm, so `down` ends it with them; its socket is a
  # file every host sees.
  "$self" exec "$name" ctl munged --force --socket="$dir/munge/munge.socket" \
    --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
  nodes=$(grep -v '^ctl$' "$dir/hostnames" | paste -sd, -)
  cat >"$dir/slurm/slurm.conf" <<EOF
ClusterName=ft$k
SlurmctldHost=ctl(127.100.$k.10)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/slurm/ctld
SlurmctldPidFile=$dir/slurm/slurmctld.pid
SlurmctldLogFile=$dir/slurm/slurmctld.log
# Per host, in each host's own /tmp.
SlurmdSpoolDir=/tmp/slurmd
SlurmdPidFile=/tmp/slurmd.pid
SlurmdLogFile=/tmp/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=600
KillWait=5
MessageTimeout=5
$extra
NodeName=DEFAULT CPUs=4 Sockets=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN
EOF
  for host in $(grep -v '^ctl$' "$dir/hostnames"); do
    echo "NodeName=$host NodeAddr=$(addr "$name" "$host")" >>"$dir/slurm/slurm.conf"
  done
  echo "PartitionName=main Nodes=$nodes Default=YES MaxTime=INFINITE State=UP" >>"$dir/slurm/slurm.conf"
  # The controller and the daemons read this config; clients find it through SLURM_CONF.
  (export SLURM_CONF="$dir/slurm/slurm.conf"; "$self" exec "$name" ctl slurmctld -i)
  for host in $(grep -v '^ctl$' "$dir/hostnames"); do
    (export SLURM_CONF="$dir/slurm/slurm.conf"; "$self" exec "$name" "$host" slurmd)
  done
  local i
  for i in $(seq 1 150); do
    if SLURM_CONF="$dir/slurm/slurm.conf" "$self" exec "$name" ctl sinfo -h -o '%t' 2>/dev/null |
      grep -qx idle &&
      ! SLURM_CONF="$dir/slurm/slurm.conf" "$self" exec "$name" ctl sinfo -h -o '%t' 2>/dev/null |
      grep -vqx idle; then
      return 0
    fi
    sleep 0.2
  done
  SLURM_CONF="$dir/slurm/slurm.conf" "$self" exec "$name" ctl sinfo >&2 || true
  tail -20 "$dir/slurm/slurmctld.log" >&2 || true
  die "$name: Slurm nodes did not become idle within 30 s"
}

cmd=${1:-}
[ -n "$cmd" ] || { sed -n '2,27p' "$self"; exit 2; }
shift
case "$cmd" in
  check) reason=$(check) || { echo "$reason"; exit 77; } ;;
  up) up "$@" ;;
  down) down "$1" ;;
  exec) enter "$@" ;;
  rsh-agent) echo "$(state "$1")/rsh" ;;
  addr) addr "$@" ;;
  cut) ip link set "$(veth "$1" "$2")" down ;;
  heal) heal "$@" ;;
  signal) signal_host "$1" "$2" "$3" ;;
  procs) procs "$@" ;;
  slurm-up) slurm_up "$@" ;;
  state-dir) state "$1" ;;
  -h|--help) sed -n '2,27p' "$self" ;;
  *) die "unknown command '$cmd'" ;;
esac
