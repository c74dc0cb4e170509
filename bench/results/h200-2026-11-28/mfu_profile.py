"""The profile behind BENCHMARKS.md section 4 (H200, 2026-11-28): MFU of a BERT-base full-model stage in
bf16, eager, without dropout and torch.compiled, and the top CUDA kernels of 3 eager steps.
    PYTHONPATH=. python3 bench/results/h200-2026-11-28/mfu_profile.py   (needs a GPU)
"""
import sys, time, torch
sys.path.insert(0, "bench")  # steps.loop_ms
from steps import loop_ms
from minimodel.method import models
from minimodel.method.mlm import mlm_batches, mlm_loss
torch.backends.cuda.matmul.allow_tf32 = True
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
V, B, S = (30000, 256, 128) if len(sys.argv) < 2 else (500, 4, 32)
tok = models.empty_tokenizer("bert").train_new_from_iterator([" ".join(f"w{i}" for i in range(2*V))], V)
full = models.build_mlm("bert", tok, hidden=768, layers=12, heads=12, ffn=3072, max_len=S).to(dev)
print("attn impl", full.config._attn_implementation, flush=True)
models.trainable(full, True)
blocks = torch.randint(5, len(tok), (1024, S), dtype=torch.int32)
batches = mlm_batches(blocks, tok, B, seed=1, device=dev)
res = {}
def run(name, model, loss):
    f, ms = loop_ms(model, loss, batches, 20, "bf16", warmups=3)
    res[name] = ms
    print(f"{name}: {ms:.1f} ms, {f/ms/1e9:.0f} TFLOP/s, MFU {f/ms/1e9/989:.0%}", flush=True)
    return f
F = run("eager", full, lambda b: mlm_loss(full, b))
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for i in range(3):
        with torch.autocast("cuda", torch.bfloat16):
            l = mlm_loss(full, batches(i))
        l.backward()
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=22, max_name_column_width=70), flush=True)
full.zero_grad(set_to_none=True)
for m in full.modules():
    if isinstance(m, torch.nn.Dropout): m.p = 0.0
full.config.attention_probs_dropout_prob = 0.0
run("eager, no dropout", full, lambda b: mlm_loss(full, b))
c = torch.compile(lambda b: mlm_loss(full, b))
t = time.time()
for i in range(3):
    with torch.autocast("cuda", torch.bfloat16):
        c(batches(i)).backward()
torch.cuda.synchronize(); print(f"compile warm-up {time.time()-t:.0f}s", flush=True)
full.zero_grad(set_to_none=True)
run("compiled, no dropout (warmed outside counter)", full, c)
