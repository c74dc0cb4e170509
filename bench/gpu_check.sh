#!/usr/bin/env bash
# All GPU checks in one command, well inside 10 minutes on one H100/H200 (its image has torch + transformers;
# no pip there): bench/gpu_step.py (no host sync inside a relearning step, step time versus FLOPs
# for depth 12/4/2/1, MFU of full-model stages at BERT-base size, bf16 autocast and bf16 weights,
# eager and compiled; 45 s on an H200 before the compiled variants) and the CUDA/bf16 code path end
# to end (the cipher pipeline tests).
# Log to $OUT/gpu.log and numbers to $OUT/gpu_step.json when OUT is set.
#     bash bench/gpu_check.sh
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1
OUT=${OUT:-/tmp}
{
  nvidia-smi -L
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
  timeout 420 python3 bench/gpu_step.py --steps 20
  timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_pipeline.py -k "cipher or costs_less" -s 2>&1 | grep -E "passed|failed|Error|accuracy'"
} 2>&1 | tee "$OUT/gpu.log"
