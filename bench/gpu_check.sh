#!/usr/bin/env bash
# GPU checks, run on a lent accelerator machine (its image has torch + transformers; no pip there):
# the CUDA/bf16 code path end to end (the cipher pipeline tests) and the relearning step benchmark
# at BERT-base size. Output goes to $OUT/gpu.log when OUT is set.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1
log=${OUT:-/tmp}/gpu.log
{
  nvidia-smi -L
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
  python3 bench/relearn_step.py --hidden 768 --layers 12 --vocab 30000 --batch 32 --seq 128 --repeats 20
  python3 -m pytest -q -p no:cacheprovider tests/test_pipeline.py -k "cipher or costs_less" -s 2>&1 | grep -E "passed|failed|Error|accuracy'"
} 2>&1 | tee "$log"
