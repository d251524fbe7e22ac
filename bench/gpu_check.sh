#!/usr/bin/env bash
# The GPU check, one command for a lent GPU machine (PyTorch there; no ROS, no package registry):
#
#   bash bench/gpu_check.sh            # on the GPU machine; logs to $OUT (the device tool's folder) or ./gpu_check
#   bash bench/gpu_check.sh --dry-run  # the same steps on this machine's CPU, small and quick
#
# 1. the learner's CUDA tests: update/checkpoint/publish on CUDA, critics as CUDA graphs
#    (compile: reduce-overhead) equal to eager, bf16 autocast, batches prefetched on a side stream, replay
#    images kept on the GPU, the pixel recipe's LearnerCore (cache, batches without images) on CUDA, and
#    the backbone cache's reads and an update's metrics with no device sync (sync debug mode: error);
# 2. bench_update.py on CUDA: the issue's updates/s for state and pixel SAC against the eager baseline
#    of the same run, with the breakdown, and updates in a stream with metrics read at once or one late;
# 3. bench_vla_update.py on CUDA: one VLA update at the issue's size and at the CPU run's.
# Each step has its own time limit, so one slow step leaves the others' results; the whole is sized to
# finish within one device call (10 minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check}"
mkdir -p "$out"
export PYTHONPATH="src/user_learner:src/user_policies:src/user_robot:test:examples${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
python="${PYTHON:-python3}"
device=cuda quick=() repeats=3 select=(-k "not cpu")  # the CUDA cases and the tests without a device
if [[ "${1:-}" == "--dry-run" ]]; then
  device=cpu quick=(--quick --clock cpu) repeats=1 select=()
fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.log, report its status
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc" | tee -a "$out/summary.txt"
}

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
  "$python" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda',
torch.cuda.is_available())"; } | tee "$out/summary.txt"
"$python" - <<'EOF' || exit 1
import importlib.util, sys
missing = [m for m in ("torch", "numpy", "yaml", "safetensors", "hypothesis", "pytest", "rich")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {', '.join(missing)} (carry them as wheels: the device tool's README)")
EOF

tests=(src/user_learner/test/test_cuda.py src/user_learner/test/test_sac.py src/user_learner/test/test_prefetch.py
       src/user_learner/test/test_replay_buffer.py src/user_learner/test/test_backbone_cache.py
       src/user_learner/test/test_update_metrics.py)
step tests 150 "$python" -m pytest -q -p no:cacheprovider -rs "${tests[@]}" "${select[@]}"
step bench_update 300 "$python" bench/bench_update.py --device "$device" "${quick[@]}"
step bench_vla_update 100 "$python" bench/bench_vla_update.py --device "$device" --repeats "$repeats"
cat "$out/summary.txt"
