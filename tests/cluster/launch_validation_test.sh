#!/usr/bin/env bash
# scripts/launch.sh on hostile or broken input: the scheduler's environment (SLURM_*), its own
# numeric options and the hostfile. Every case is refused with exit 2 and one line naming the
# variable or the hostfile line, before anything runs, and nothing from the environment is
# evaluated (a SLURM_* value that would run a command in bash arithmetic leaves no trace).
# Valid input still goes through. Needs neither the build nor OpenMPI nor Slurm: facetrain,
# mpirun, srun and scontrol are stand-ins that answer what launch.sh asks of them.
set -uo pipefail

launch=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/launch.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# --- stand-ins --------------------------------------------------------------------------------
mkdir "$tmp/bin"
# facetrain config show ... --key K: the two settings launch.sh reads.
cat >"$tmp/bin/facetrain" <<'EOF'
#!/bin/sh
case "$*" in *dist.timeout_s*) echo 30 ;; *) echo ;; esac
EOF
# mpirun: records the hostfile it was given.
cat >"$tmp/bin/mpirun" <<EOF
#!/bin/sh
while [ \$# -gt 0 ]; do [ "\$1" = --hostfile ] && cp "\$2" "$tmp/mpirun-hostfile"; shift; done
EOF
# srun: PMIx is there. scontrol show hostnames LIST: one name per comma.
printf '#!/bin/sh\necho "MPI plugin types are..."; echo "	pmix"\n' >"$tmp/bin/srun"
cat >"$tmp/bin/scontrol" <<'EOF'
#!/bin/sh
echo "$3" | tr , '\n'
EOF
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/agent"
# ompi_info: an OpenMPI that does not answer (the agent comes from --mca).
printf '#!/bin/sh\nexit 1\n' >"$tmp/bin/ompi_info"
chmod +x "$tmp/bin/"*

# Runs launch.sh with a clean scheduler environment plus NAME=VALUE settings, then its arguments;
# leaves its exit code in $code and its stderr in $err.
launch() {
  local envs=()
  while [ $# -gt 0 ] && [[ "$1" == *=* ]]; do envs+=("$1"); shift; done
  err=$(cd "$tmp" && env -u FACETRAIN_IFNAME -u SLURM_NNODES -u SLURM_NTASKS \
    -u SLURM_NTASKS_PER_NODE -u SLURM_RESTART_COUNT -u SLURM_JOB_ID -u SLURM_JOB_NODELIST \
    -u OMPI_MCA_plm_rsh_agent PATH="$tmp/bin:$PATH" FACETRAIN_BIN="$tmp/bin/facetrain" \
    "${envs[@]}" timeout 20 bash "$launch" "$@" 2>&1 >/dev/null)
  code=$?
}
indent() { sed 's/^/    /'; }
# refused WHAT TEXT: launch.sh exited 2 with one line of stderr that contains TEXT.
refused() {
  local what=$1 text=$2
  if [ "$code" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] && [[ "$err" == *"$text"* ]]; then
    echo "PASS: $what"
  else
    echo "FAIL: $what: expected exit 2 and one line with \"$text\"; got exit $code:"
    indent <<<"$err"
    failures=$((failures + 1))
  fi
}
# passed WHAT: launch.sh exited 0.
passed() {
  local what=$1
  if [ "$code" = 0 ]; then
    echo "PASS: $what"
  else
    echo "FAIL: $what: expected exit 0; got exit $code:"
    indent <<<"$err"
    failures=$((failures + 1))
  fi
}
hostfile() { printf '%b' "$1" >"$tmp/hosts"; }
train=(-- --config recipe.toml)
slurm=(SLURM_JOB_ID=4242 SLURM_JOB_NODELIST=localhost)

# --- the scheduler's environment ---------------------------------------------------------------
marker=$tmp/marker
launch "${slurm[@]}" "SLURM_NNODES=a[\$(touch $marker)]" --slurm --dry-run "${train[@]}"
refused "SLURM_NNODES='a[\$(touch ...)]'" "SLURM_NNODES='a[\$(touch $marker)]' is not a count"
what="SLURM_NNODES: the command in it did not run"
if [ -e "$marker" ]; then echo "FAIL: $what"; failures=$((failures + 1)); else echo "PASS: $what"; fi

launch "${slurm[@]}" SLURM_NTASKS_PER_NODE=1+1 --slurm --dry-run "${train[@]}"
refused "SLURM_NTASKS_PER_NODE=1+1" "SLURM_NTASKS_PER_NODE='1+1' is not a count"

launch "${slurm[@]}" "SLURM_RESTART_COUNT=x[\$(touch $marker)]" --slurm --dry-run "${train[@]}"
refused "SLURM_RESTART_COUNT='x[\$(touch ...)]'" "SLURM_RESTART_COUNT='x[\$(touch $marker)]' is not a count"
what="SLURM_RESTART_COUNT: the command in it did not run"
if [ -e "$marker" ]; then echo "FAIL: $what"; failures=$((failures + 1)); else echo "PASS: $what"; fi

launch "${slurm[@]}" SLURM_NTASKS=1234567890 --slurm --dry-run "${train[@]}"
refused "SLURM_NTASKS of 10 digits" "SLURM_NTASKS='1234567890' is not a count"

launch SLURM_JOB_ID='1;id' SLURM_JOB_NODELIST=localhost --slurm --dry-run "${train[@]}"
refused "SLURM_JOB_ID='1;id'" "SLURM_JOB_ID='1;id' is not a Slurm job id"

launch SLURM_JOB_ID=4242 SLURM_JOB_NODELIST=$'node1\nnode2' --slurm --dry-run "${train[@]}"
refused "SLURM_JOB_NODELIST with a newline" "SLURM_JOB_NODELIST=\$'node1\\nnode2' is not a Slurm host list"

launch SLURM_JOB_ID=4242 SLURM_JOB_NODELIST=localhost,no-such-host.invalid --slurm --dry-run "${train[@]}"
refused "SLURM_JOB_NODELIST naming a host that does not resolve" \
  "SLURM_JOB_NODELIST='localhost,no-such-host.invalid': host no-such-host.invalid does not resolve"

launch "${slurm[@]}" SLURM_NNODES=1 SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=02 SLURM_RESTART_COUNT=0 \
  --slurm --dry-run "${train[@]}"
passed "a valid Slurm allocation"
what="its tasks per node (02) read as 2"
if [[ "$err" == *"--ntasks-per-node=2 "* ]]; then echo "PASS: $what"; else
  echo "FAIL: $what: $err"; failures=$((failures + 1)); fi

# --- the command line --------------------------------------------------------------------------
launch -np '1+1' --dry-run "${train[@]}"
refused "-np 1+1" "-np '1+1' is not a count"
launch --gpus-per-node 0 --dry-run "${train[@]}"
refused "--gpus-per-node 0" "--gpus-per-node 0 is too small"
# shellcheck disable=SC2016  # meant literally: launch.sh must not run it
launch --max-restarts 'a[$(id)]' --dry-run "${train[@]}"
refused "--max-restarts 'a[\$(id)]'" "--max-restarts 'a[\$(id)]' is not a count"
launch --dry-run -np
refused "-np without a value" "-np needs a value"

# --- the hostfile ------------------------------------------------------------------------------
hostfile '# node1 slots=2\n   # node2\n'
launch --hostfile hosts --dry-run "${train[@]}"
refused "a hostfile of comments only" "hostfile hosts names no host"

hostfile '\n  \n'
launch --hostfile hosts --dry-run "${train[@]}"
refused "a blank hostfile" "hostfile hosts names no host"

hostfile '127.0.0.1\nnode1 slots=abc\n'
launch --hostfile hosts --dry-run "${train[@]}"
refused "node1 slots=abc" "hostfile hosts:2: slots='abc' is not a count"

hostfile 'node1 slots=0\n'
launch --hostfile hosts --dry-run "${train[@]}"
refused "node1 slots=0" "hostfile hosts:1: slots=0 is too small"

hostfile '# the hosts\nbad_host!\n'
launch --hostfile hosts --dry-run "${train[@]}"
refused "bad_host!" "hostfile hosts:2: 'bad_host!' is not a host name"

hostfile '127.0.0.1 slots=2 cpus=4\n'
launch --hostfile hosts --dry-run "${train[@]}"
refused "an unknown word after the host" "hostfile hosts:1: 'cpus=4' after the host; expected HOST [slots=N] [max_slots=N]"

hostfile '127.0.0.1 slots=2\nlocalhost\n127.0.0.1 slots=2\n'
launch --hostfile hosts --dry-run "${train[@]}"
refused "a duplicate host" "hostfile hosts:3: host 127.0.0.1 is already on line 1"

hostfile '127.0.0.1\nno-such-host.invalid slots=2\n'
launch --hostfile hosts --dry-run "${train[@]}"
refused "a host that does not resolve" "hostfile hosts:2: host no-such-host.invalid does not resolve"

hostfile '10.0.0.256\n'
launch --hostfile hosts --dry-run "${train[@]}"
refused "an address out of range" "hostfile hosts:1: '10.0.0.256' is not an IPv4 address"

hostfile '# the job\n127.0.0.1 slots=2  # this host\n'
launch --hostfile hosts --dry-run "${train[@]}"
passed "127.0.0.1 slots=2 (dry run)"

# Without --dry-run, to a stand-in mpirun: it gets the checked lines, comments left out.
hostfile '# the job\n127.0.0.1 slots=2  # this host\nlocalhost\tmax_slots=4 slots=02\n'
launch --hostfile hosts --gpus-per-node 1 --mca plm_rsh_agent "$tmp/bin/agent -q" "${train[@]}"
passed "127.0.0.1 and localhost, started"
what="mpirun's hostfile is the checked lines"
expected=$'127.0.0.1 slots=2\nlocalhost slots=2 max_slots=4'
if [ "$(cat "$tmp/mpirun-hostfile" 2>/dev/null)" = "$expected" ]; then echo "PASS: $what"; else
  echo "FAIL: $what: got"; { indent <"$tmp/mpirun-hostfile"; } 2>/dev/null; failures=$((failures + 1)); fi

[ "$failures" = 0 ] && echo "all checks passed" || echo "$failures check(s) failed"
exit $((failures > 0))
