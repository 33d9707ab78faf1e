#!/usr/bin/env bash
# Starts `facetrain train` on one host or many, one process per GPU (or N CPU ranks), and
# optionally relaunches it from the latest checkpoint, on the hosts that still answer, after a
# failure.
#
#   scripts/launch.sh [-np N] [--hostfile FILE] [--gpus-per-node G] [--slurm] [--max-restarts N]
#                     [--interface IF] [--mca KEY VALUE]... [-x VAR[=VALUE]]... [--dry-run]
#                     -- TRAIN_ARGS...
#
#   -np N             processes in all (default: G x hosts; G = GPUs of this host, or 1)
#   --hostfile FILE   OpenMPI hostfile, "HOST [slots=N] [max_slots=N]" a line; G per host
#   --gpus-per-node G processes (GPUs) per host (under --slurm: the allocation's tasks per node)
#   --slurm           inside an salloc/sbatch allocation: srun --mpi=pmix instead of mpirun
#   --max-restarts N  when the job fails, relaunch it with --resume auto up to N times, leaving
#                     out the hosts that no longer answer
#   --interface IF    the network interface of MPI (TCP and out-of-band) and NCCL; also
#                     FACETRAIN_IFNAME or dist.interface in the recipe
#   --mca KEY VALUE   an OpenMPI setting (under --slurm: exported as OMPI_MCA_KEY)
#   -x VAR[=VALUE]    pass an environment variable to every process
#   --dry-run         print the launch command and exit
# NCCL_*, CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS and FACETRAIN_* are passed to every process.
# FACETRAIN_BIN overrides the binary (default: the build's app/cli/facetrain).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { echo "launch.sh: $*" >&2; }
fail() { say "$1"; exit "${2:-2}"; }
# A value from outside as one printable line: quoted the shell's way, control characters escaped.
shown() {
  local v=$1
  [ ${#v} -le 80 ] || v="${v:0:80}..."
  printf '%s' "${v@Q}"
}

np="" hostfile="" gpus="" slurm=0 restarts=0 dry=0 interface=${FACETRAIN_IFNAME:-}
mca=() pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    -np|--np|--hostfile|--gpus-per-node|--max-restarts|--interface)
      [ $# -ge 2 ] || fail "$1 needs a value" ;;
  esac
  case "$1" in
    -np|--np) np=$2; shift 2 ;;
    --hostfile) hostfile=$2; shift 2 ;;
    --gpus-per-node) gpus=$2; shift 2 ;;
    --slurm) slurm=1; shift ;;
    --max-restarts) restarts=$2; shift 2 ;;
    --interface) interface=$2; shift 2 ;;
    --mca) [ $# -ge 3 ] || fail "--mca needs a key and a value"; mca+=("$2" "$3"); shift 3 ;;
    -x) [ $# -ge 2 ] || fail "-x needs a variable"; pass+=("$2"); shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) fail "unknown option $(shown "$1") (train arguments go after --)" ;;
  esac
done
[ $# -gt 0 ] || fail "no training arguments; e.g. -- --config experiments/ms1mv3_r50.toml"
train_args=("$@")

# --- what the command line, the scheduler and the hostfile say, checked before anything uses it
# None of it is ever evaluated. Bash evaluates a variable's text as an expression in $(( )) and
# [[ -gt ]] (a[$(command)] runs the command), so a count is matched as at most 9 plain digits
# before any arithmetic, then read in base 10 ("08" is 8, not a bad octal number).
# count NAME VALUE MIN: prints VALUE as a number; refuses (exit 2) naming NAME ("-np ",
# "SLURM_NNODES=") otherwise.
count() {
  local name=$1 value=$2 min=$3
  [[ "$value" =~ ^[0-9]{1,9}$ ]] ||
    fail "$name$(shown "$value") is not a count (expected a whole number >= $min, at most 9 digits)"
  value=$((10#$value))
  [ "$value" -ge "$min" ] || fail "$name$value is too small (expected a whole number >= $min)"
  echo "$value"
}
if [ -n "$np" ]; then np=$(count "-np " "$np" 1) || exit; fi
if [ -n "$gpus" ]; then gpus=$(count "--gpus-per-node " "$gpus" 1) || exit; fi
restarts=$(count "--max-restarts " "$restarts" 0) || exit
for ((i = 0; i < ${#mca[@]}; i += 2)); do
  [[ "${mca[i]}" =~ ^[A-Za-z0-9_]+$ ]] || fail "--mca key $(shown "${mca[i]}") is not an OpenMPI setting name"
done
for v in "${pass[@]}"; do
  [[ "$v" =~ ^[A-Za-z_][A-Za-z0-9_]*(=.*)?$ ]] || fail "-x $(shown "$v") is not VAR or VAR=VALUE"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Host names as the resolver takes them (letters, digits, '-' and '_' in dot-separated labels of
# at most 63, 253 in all), or IPv4 addresses; prints why not.
is_ipv4() {
  local o
  [[ "$1" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
  for o in "${BASH_REMATCH[@]:1}"; do [ $((10#$o)) -le 255 ] || return 1; done
}
host_problem() {
  local h=$1 label='[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?'
  if [[ "$h" =~ ^[0-9.]+$ ]]; then
    is_ipv4 "$h" || echo "$(shown "$h") is not an IPv4 address (four numbers 0-255)"
  elif [ ${#h} -gt 253 ] || ! [[ "$h" =~ ^$label(\.$label)*$ ]]; then
    echo "$(shown "$h") is not a host name (letters, digits, '-', '_' in labels joined by '.') or an IPv4 address"
  fi
}
# Whether host H resolves, as mpirun's ssh and srun will look it up (an IP address needs no look-up).
resolves() {
  is_ipv4 "$1" && return 0
  command -v getent >/dev/null || return 0
  timeout 5 getent ahosts "$1" >/dev/null 2>&1
}

# The scheduler's environment (under --slurm only; without it launch.sh reads no SLURM_*).
restart_count=0
if [ "$slurm" = 1 ]; then
  # What this Slurm can start comes first: without PMIx no rank could join the others.
  command -v srun >/dev/null || fail "--slurm: srun not found"
  srun --mpi=list 2>&1 | grep -qw pmix ||
    fail "--slurm: this Slurm has no PMIx plugin (srun --mpi=list shows: $(srun --mpi=list 2>&1 | grep -v '^MPI plugin' | xargs)); OpenMPI needs it to start under srun. Install it (Debian: slurm-wlm-basic-plugins) or run launch.sh without --slurm inside the allocation"
  [ -n "${SLURM_JOB_ID:-}" ] || fail "--slurm: not inside a Slurm allocation (no SLURM_JOB_ID); use sbatch or salloc"
  # A job id is a name, never a number to compute with: digits, as many as a federated id has.
  [[ "$SLURM_JOB_ID" =~ ^[0-9]{1,10}$ ]] ||
    fail "SLURM_JOB_ID=$(shown "$SLURM_JOB_ID") is not a Slurm job id (expected 1 to 10 digits)"
  for v in SLURM_NNODES SLURM_NTASKS SLURM_NTASKS_PER_NODE; do
    if [ -n "${!v+x}" ]; then count "$v=" "${!v}" 1 >/dev/null || exit; fi
  done
  if [ -n "${SLURM_RESTART_COUNT+x}" ]; then
    restart_count=$(count SLURM_RESTART_COUNT= "$SLURM_RESTART_COUNT" 0) || exit
  fi
  if [ -z "$gpus" ] && [ -n "${SLURM_NTASKS_PER_NODE:-}" ]; then
    gpus=$((10#$SLURM_NTASKS_PER_NODE))  # the allocation's tasks per node (sbatch --ntasks-per-node)
  fi
  # Read by scontrol alone, as one argument: names, ranges in brackets, commas.
  nodelist=${SLURM_JOB_NODELIST:-}
  [ -n "$nodelist" ] || fail "--slurm: the allocation lists no nodes (SLURM_JOB_NODELIST is empty)"
  if [ ${#nodelist} -gt 65536 ] || ! [[ "$nodelist" =~ ^[A-Za-z0-9][][A-Za-z0-9._,-]*$ ]]; then
    fail "SLURM_JOB_NODELIST=$(shown "$nodelist") is not a Slurm host list (expected e.g. node[01-04],gpu7)"
  fi
fi

# The hostfile: every line "HOST [slots=N] [max_slots=N]", '#' to the end of a line a comment,
# each host once and resolvable. Fills `hosts` and `host_entry` (host → the line mpirun gets).
hosts=()
declare -A host_entry=()
read_hostfile() {
  local file=$1 n=0 line words w h slots max problem key
  local -A line_of=()
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%$'\r'}
    line=${line%%#*}
    read -r -a words <<<"$line"
    [ ${#words[@]} -gt 0 ] || continue
    local at="hostfile $file:$n"
    h=${words[0]}
    problem=$(host_problem "$h")
    [ -z "$problem" ] || fail "$at: $problem; expected HOST [slots=N] [max_slots=N]"
    key=${h,,}
    [ -z "${line_of[$key]:-}" ] || fail "$at: host $h is already on line ${line_of[$key]}; name each host once"
    line_of[$key]=$n
    slots="" max=""
    for w in "${words[@]:1}"; do
      case "$w" in
        slots=*)
          [ -z "$slots" ] || fail "$at: slots given twice"
          slots=$(count "$at: slots=" "${w#*=}" 1) || exit ;;
        max_slots=*)
          [ -z "$max" ] || fail "$at: max_slots given twice"
          max=$(count "$at: max_slots=" "${w#*=}" 1) || exit ;;
        *) fail "$at: $(shown "$w") after the host; expected HOST [slots=N] [max_slots=N]" ;;
      esac
    done
    if [ -n "$slots" ] && [ -n "$max" ] && [ "$slots" -gt "$max" ]; then
      fail "$at: slots=$slots is more than max_slots=$max"
    fi
    resolves "$h" || fail "$at: host $h does not resolve (getent ahosts finds no address for it)"
    hosts+=("$h")
    host_entry[$h]="$h${slots:+ slots=$slots}${max:+ max_slots=$max}"
  done <"$file"
  [ ${#hosts[@]} -gt 0 ] || fail "hostfile $file names no host"
}
if [ "$slurm" = 0 ] && [ -n "$hostfile" ]; then
  { [ -f "$hostfile" ] && [ -r "$hostfile" ]; } || fail "hostfile $hostfile cannot be read"
  read_hostfile "$hostfile"
fi

bin=${FACETRAIN_BIN:-${FACETRAIN_BUILD:-$here/../build}/app/cli/facetrain}
[ -x "$bin" ] || fail "$bin not found; run scripts/build.sh (or set FACETRAIN_BIN)"

# --- the recipe's settings that the launcher acts on, as facetrain resolves them -------------
config_value() {
  local args=() a next=""
  for a in "${train_args[@]}"; do
    if [ -n "$next" ]; then args+=("$next" "$a"); next=""; continue; fi
    case "$a" in
      --config|--set) next=$a ;;
      --config=*|--set=*) args+=("${a%%=*}" "${a#*=}") ;;
    esac
  done
  "$bin" config show "${args[@]}" --key "$1" || fail "cannot read $1 from the training arguments"
}
timeout_s=$(config_value dist.timeout_s)
configured_interface=$(config_value dist.interface)
if [ -n "$configured_interface" ] && [ -n "$interface" ] && [ "$configured_interface" != "$interface" ]; then
  fail "dist.interface = \"$configured_interface\" but --interface/FACETRAIN_IFNAME is $interface: name it in one place"
fi
interface=${interface:-$configured_interface}
[ -z "$interface" ] || [[ "$interface" =~ ^[A-Za-z0-9_.-]{1,15}$ ]] ||
  fail "network interface $(shown "$interface") (--interface, FACETRAIN_IFNAME or dist.interface) is not an interface name"

# --- the network interface: checked here, named for every transport -------------------------
interfaces_here() { awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/net/dev | sort | xargs; }
if [ -n "$interface" ]; then
  interfaces_here | tr ' ' '\n' | grep -qxF -- "$interface" ||
    fail "network interface '$interface' does not exist on $(hostname); it has: $(interfaces_here)"
  export FACETRAIN_IFNAME=$interface NCCL_SOCKET_IFNAME=$interface
  mca+=(btl_tcp_if_include "$interface" oob_tcp_if_include "$interface")
fi

# --- how soon mpirun notices a host it cannot reach -------------------------------------------
# OpenMPI's daemons talk over TCP that is idle most of the time; its keepalive (300 s, then 9
# probes 20 s apart, by default) is how mpirun learns that a host is gone. Derived from
# dist.timeout_s: a lost host is noticed within timeout/5 s (4 s at least, 10 s at most), so
# mpirun ends the job itself, naming the host, before the collectives' deadline passes.
keepalive() {
  awk -v t="$1" 'BEGIN { d = int(t / 5 + 0.5); if (d < 4) d = 4; if (d > 10) d = 10
    i = int(d / 5); if (i < 1) i = 1; k = d - 3 * i; if (k < 1) k = 1; print k, i, 3 }'
}
has_mca() {
  local i
  for ((i = 0; i < ${#mca[@]}; i += 2)); do [ "${mca[i]}" = "$1" ] && return 0; done
  [ -n "$(printenv "OMPI_MCA_$1" || true)" ]
}
if [ "$slurm" = 0 ] && ! has_mca oob_tcp_keepalive_time; then
  read -r ka_time ka_intvl ka_probes <<<"$(keepalive "$timeout_s")"
  mca+=(oob_tcp_keepalive_time "$ka_time" oob_tcp_keepalive_intvl "$ka_intvl"
    oob_tcp_keepalive_probes "$ka_probes")
fi

# --- hosts -------------------------------------------------------------------------------------
if [ -z "$gpus" ]; then
  gpus=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
  [ "$gpus" -gt 0 ] || gpus=1
fi
if [ "$slurm" = 1 ]; then
  scontrol show hostnames "$nodelist" >"$work/nodes" 2>"$work/scontrol" ||
    fail "--slurm: scontrol show hostnames SLURM_JOB_NODELIST=$(shown "$nodelist") failed: $(tail -1 "$work/scontrol")"
  mapfile -t hosts <"$work/nodes"
  [ ${#hosts[@]} -gt 0 ] || fail "--slurm: the allocation lists no nodes (SLURM_JOB_NODELIST=$(shown "$nodelist"))"
  for h in "${hosts[@]}"; do
    problem=$(host_problem "$h")
    [ -z "$problem" ] || fail "SLURM_JOB_NODELIST=$(shown "$nodelist"): $problem"
    resolves "$h" ||
      fail "SLURM_JOB_NODELIST=$(shown "$nodelist"): host $h does not resolve (getent ahosts finds no address for it)"
  done
fi
# The hosts of the job (this one alone without a hostfile or Slurm), and its processes in all.
host_count() { echo $((${#hosts[@]} > 0 ? ${#hosts[@]} : 1)); }
ranks() { echo $((per_host * $(host_count))); }
# Processes per host: -np split over the hosts, else G.
per_host=$gpus
if [ -n "$np" ]; then
  [ $((np % $(host_count))) = 0 ] || fail "-np $np does not split evenly over $(host_count) hosts"
  per_host=$((np / $(host_count)))
fi

# Whether a host answers: the way mpirun reaches it (its rsh agent, ssh by default), or a
# one-task srun step inside the allocation. Prints why not.
probe_seconds=10
rsh_agent() {
  local i agent
  # OpenMPI's own answer takes its parameter files and OMPI_MCA_* into account.
  agent=$(ompi_info --parsable --param plm rsh --level 9 2>/dev/null |
    sed -n 's/^mca:plm:rsh:param:plm_rsh_agent:value://p' | tr -d '"' || true)
  agent=${agent:-${OMPI_MCA_plm_rsh_agent:-ssh}}
  for ((i = 0; i < ${#mca[@]}; i += 2)); do [ "${mca[i]}" = plm_rsh_agent ] && agent=${mca[i + 1]}; done
  agent=${agent%%:*}
  # Split into words as OpenMPI does, without expanding anything in them.
  read -r -a agent_command <<<"$agent"
  [ ${#agent_command[@]} -gt 0 ] || agent_command=(ssh)
  [ "$(basename "${agent_command[0]}")" = ssh ] && agent_command+=(-o BatchMode=yes -o ConnectTimeout=5)
  return 0
}
probe() {
  local out rc
  if [ "$slurm" = 1 ]; then
    out=$(timeout "$probe_seconds" srun --nodes=1 --ntasks=1 --nodelist="$1" --overlap --mpi=none true 2>&1 </dev/null)
  else
    out=$(timeout "$probe_seconds" "${agent_command[@]}" "$1" true 2>&1 </dev/null)
  fi
  rc=$?
  [ "$rc" = 0 ] && return 0
  if [ "$rc" = 124 ]; then
    echo "no answer within $probe_seconds s"
  else
    echo "${out:-exit code $rc}" | tail -1
  fi
  return 1
}
# Probes every host at once; fills `unreachable` (host → why).
declare -A unreachable
agent_command=()
probe_all() {
  unreachable=()
  [ ${#hosts[@]} -gt 1 ] || return 0
  [ "$slurm" = 1 ] || [ ${#agent_command[@]} -gt 0 ] || rsh_agent
  local dir h
  dir=$(mktemp -d)
  for h in "${hosts[@]}"; do (probe "$h" >"$dir/$h" 2>&1 || echo $? >"$dir/$h.failed") & done
  wait
  for h in "${hosts[@]}"; do [ -f "$dir/$h.failed" ] && unreachable[$h]=$(cat "$dir/$h"); done
  rm -rf "$dir"
}

# --- the launch command -------------------------------------------------------------------------
export_vars=()
mapfile -t exported < <(compgen -e)
for v in "${exported[@]}"; do
  case "$v" in NCCL_* | FACETRAIN_* | CUDA_VISIBLE_DEVICES | OMP_NUM_THREADS) export_vars+=("$v") ;; esac
done
for v in "${pass[@]}"; do
  [[ "$v" == *=* ]] && export "${v%%=*}=${v#*=}"
  export_vars+=("${v%%=*}")
done
current_hostfile=""
build_command() {
  local i n
  n=$(ranks)
  if [ "$slurm" = 1 ]; then
    for ((i = 0; i < ${#mca[@]}; i += 2)); do export "OMPI_MCA_${mca[i]}=${mca[i + 1]}"; done
    cmd=(srun --mpi=pmix --nodes="${#hosts[@]}" --nodelist="$(
      IFS=,
      echo "${hosts[*]}"
    )" --ntasks="$n" --ntasks-per-node="$per_host" --kill-on-bad-exit=1 --export=ALL)
    # A failed step that spanned a lost node stays on the books (its CPUs here included) until
    # Slurm hears from that node; a relaunch shares the CPUs with it.
    [ "$attempt" -gt 0 ] && cmd+=(--overlap)
    command -v nvidia-smi >/dev/null && [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" -gt 0 ] &&
      cmd+=(--gpus-per-task=1)
  else
    cmd=(mpirun -np "$n" --bind-to none)
    for v in "${export_vars[@]}"; do cmd+=(-x "$v"); done
    for ((i = 0; i < ${#mca[@]}; i += 2)); do cmd+=(--mca "${mca[i]}" "${mca[i + 1]}"); done
    # One process per GPU on each host; more processes than that (CPU ranks) share the cores.
    [ "$per_host" -gt "$gpus" ] && cmd+=(--oversubscribe)
    cmd+=(--map-by "ppr:$per_host:node")
    [ -n "$current_hostfile" ] && cmd+=(--hostfile "$current_hostfile")
    [ "$(id -u)" = 0 ] && cmd+=(--allow-run-as-root)
  fi
  cmd+=("$bin" train)
}
# A hostfile of the hosts still in use (the user's lines for them, checked, in the user's order).
write_hostfile() {
  [ -n "$hostfile" ] || return 0
  current_hostfile=$work/hosts
  local h
  for h in "${hosts[@]}"; do echo "${host_entry[$h]}"; done >"$current_hostfile"
}

# Runs the job once; its stderr also goes to $work/stderr (read after a failure). Under srun, a
# job step that has been aborted but waits for a node that does not answer (Slurm's KillWait)
# is ended after a few seconds.
run_once() {
  : >"$work/stderr"
  "${cmd[@]}" "${train_args[@]}" "${resume[@]}" 2> >(tee -a "$work/stderr" >&2) &
  local pid=$! seen=""
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$slurm" = 1 ] && [ -z "$seen" ] && grep -q "Job step aborted" "$work/stderr"; then
      seen=$SECONDS
    fi
    if [ -n "$seen" ] && [ $((SECONDS - seen)) -ge 2 ]; then
      say "srun still waits for a node that does not answer (Slurm's KillWait): ending it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.5
  done
  local code=0
  wait "$pid" || code=$?
  [ "$code" = 0 ] || say "the job ended with exit code $code"
  return "$code"
}

# What the failed job said about a host: mpirun's lost daemon, or facetrain's silent ranks.
why_lost() {
  local host=$1
  if grep -q "Remote daemon: .* on node $host\$" "$work/stderr"; then
    echo "mpirun lost its daemon there"
  elif grep -qE "no answer within .* from .*on ${host}[ ,)]" "$work/stderr"; then
    echo "its ranks did not answer a timed-out rank"
  fi
}

resume=()
# Slurm reruns the batch script of a requeued job (after a node failure, or scontrol requeue):
# the run folder already holds this job's checkpoints, so continue from them.
if [ "$slurm" = 1 ] && [ "$restart_count" -gt 0 ]; then
  has_resume=0
  for a in "${train_args[@]}"; do [[ "$a" == --resume || "$a" == --resume=* ]] && has_resume=1; done
  if [ "$has_resume" = 0 ]; then
    say "requeued job (SLURM_RESTART_COUNT=$restart_count): continuing its run folder from the latest checkpoint"
    resume=(--resume auto)
  fi
fi

attempt=0
write_hostfile
build_command
if [ "$dry" = 1 ]; then
  say "${cmd[*]} ${train_args[*]} ${resume[*]}"
  exit 0
fi
probe_all
if [ ${#unreachable[@]} -gt 0 ]; then
  for h in "${!unreachable[@]}"; do say "host $h does not answer: ${unreachable[$h]}"; done
  fail "not starting: every host of the job must answer at start" 1
fi

while :; do
  say "${cmd[*]} ${train_args[*]} ${resume[*]}"
  code=0
  run_once || code=$?
  [ "$code" = 0 ] && exit 0
  # A configuration error will not fix itself.
  [ "$code" = 2 ] && fail "usage or configuration error (exit 2); not restarting"
  if [ "$attempt" -ge "$restarts" ]; then
    say "the job failed with exit code $code$([ "$restarts" -gt 0 ] && echo " after $attempt restart(s)")"
    exit "$code"
  fi
  attempt=$((attempt + 1))
  probe_all
  if [ ${#unreachable[@]} -gt 0 ]; then
    kept=()
    for i in "${!hosts[@]}"; do
      h=${hosts[i]}
      if [ -n "${unreachable[$h]+x}" ]; then
        reason=$(why_lost "$h")
        say "dropping host $h (ranks $((i * per_host))-$((i * per_host + per_host - 1)) of the failed launch): it does not answer (${unreachable[$h]})${reason:+; $reason}"
      else
        kept+=("$h")
      fi
    done
    [ ${#kept[@]} -gt 0 ] || fail "no host answers any more; giving up" "$code"
    hosts=("${kept[@]}")
    write_hostfile
    build_command
  fi
  say "the job failed with exit code $code; restart $attempt of $restarts from the latest checkpoint on $(host_count) host(s), $(ranks) rank(s)"
  # Continue from the latest checkpoint of the run folder, whatever --resume said at first.
  args=()
  skip=0
  for a in "${train_args[@]}"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$a" in
      --resume) skip=1 ;;
      --resume=*) ;;
      *) args+=("$a") ;;
    esac
  done
  train_args=("${args[@]}")
  resume=(--resume auto)
done
