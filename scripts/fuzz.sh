#!/usr/bin/env bash
# Builds the fuzz targets (clang's libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer;
# tests/fuzz) and runs each for SECONDS on a seed corpus the tests' generators write, plus the
# inputs of past findings kept in tests/fuzz/regressions/<target>/. Prints executions and
# coverage per target; exits 1 if any target found a crash, a leak, a hang (10 s) or a memory
# blow-up (2 GB), leaving the input under $FACETRAIN_BUILD/fuzz/findings/.
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default 60 s; targets: pickle_pack recordio
#        manifest config landmarks torch_save class_names checkpoint_state hdf5)
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
source "$here/env.sh"
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pickle_pack recordio manifest config landmarks torch_save class_names checkpoint_state hdf5)
fuzz=$FACETRAIN_BUILD/fuzz
bin=$FACETRAIN_BUILD/app/cli/facetrain
[ -x "$bin" ] || bash "$here/build.sh" --target facetrain >/dev/null
torch_dir=$("$FACETRAIN_VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
CC=clang CXX=clang++ cmake -S "$FACETRAIN_ROOT/tests/fuzz" -B "$fuzz/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DFACETRAIN_FMT_INCLUDE="$torch_dir/include" -DFACETRAIN_TORCH_DIR="$torch_dir" >/dev/null
cmake --build "$fuzz/build" -j "${FACETRAIN_JOBS:-2}" >/dev/null
FACETRAIN_PYTHON="$FACETRAIN_VENV/bin/python" bash "$FACETRAIN_ROOT/tests/fuzz/make_seeds.sh" "$fuzz/seeds" "$bin"
mkdir -p "$fuzz/findings"
failed=0
printf '%-12s %10s %8s %8s %8s  %s\n' target seconds execs exec/s cov result
for t in "${targets[@]}"; do
  corpus=$fuzz/corpus/$t
  mkdir -p "$corpus"
  regressions=$FACETRAIN_ROOT/tests/fuzz/regressions/$t
  inputs=("$corpus" "$fuzz/seeds/$t")
  [ -d "$regressions" ] && inputs+=("$regressions")
  log=$fuzz/$t.log
  # Past findings first, each once: they must pass before any fuzzing.
  result=ok
  if [ -d "$regressions" ] && ! "$fuzz/build/fuzz_$t" -rss_limit_mb=2048 -timeout=10 \
      "$regressions"/* >"$fuzz/$t.regressions.log" 2>&1; then
    result="REGRESSION (see $fuzz/$t.regressions.log)"
    failed=1
  fi
  if ! "$fuzz/build/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
      -timeout=10 -max_len=262144 -artifact_prefix="$fuzz/findings/$t-" "${inputs[@]}" \
      >"$log" 2>&1; then
    result="FOUND A FAILURE (see $log and $fuzz/findings/)"
    failed=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  printf '%-12s %10s %8s %8s %8s  %s\n' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$result"
done
exit $failed
