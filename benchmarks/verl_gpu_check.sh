#!/usr/bin/env bash
# GPU checks of the veRL backend, for a machine with a CUDA GPU.
#   benchmarks/verl_gpu_check.sh [WORKDIR]
# Needs: pip install 'traject[verl,vllm]' (verl 0.9.1, vLLM 0.24.0, torch 2.11.0) in the
# current Python. Steps: the veRL tests, VLLMPolicy on the lookup env, 2 GRPO steps of
# `traject train --backend verl` on a tiny random local model. Results: WORKDIR/*.json.
set -uo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${1:-/tmp/traject-gpu-check}
PY=${PYTHON:-python}
mkdir -p "$WORKDIR"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no CUDA GPU visible"; exit 2; }
"$PY" - <<'PYEOF' || { echo "install first: pip install -e '.[dev,verl,vllm]'"; exit 2; }
import importlib.metadata as m
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "verl", m.version("verl"), "vllm", m.version("vllm"))
assert torch.cuda.is_available() and m.version("verl") == "0.9.1"
PYEOF
status=0
echo "== veRL tests"
"$PY" -m pytest tests/trainers/verl tests/agents/test_vllm_policy_tokens.py tests/agents/test_context_exhausted.py -q \
  || status=1
echo "== VLLMPolicy"
"$PY" benchmarks/verl_gpu_check.py vllm --workdir "$WORKDIR" || status=1
echo "== traject train --backend verl (2 steps)"
"$PY" benchmarks/verl_gpu_check.py train --workdir "$WORKDIR" || status=1
echo "results in $WORKDIR"
exit $status
