"""The method's invariants on tiny models: what is frozen stays frozen, mini-models are exact views,
masked-only MLM is the same loss, FLOPs are real, and everything round-trips through save/load."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModelForMaskedLM, get_linear_schedule_with_warmup

from minimodel.method import models
from minimodel.method.compute import count_flops
from minimodel.method.embeddings import init_embeddings, keep_rows, learned, only_embeddings_trainable, splice
from minimodel.method.joint import joint_loss
from minimodel.method.mlm import masked_loss, mlm_batches, mlm_loss, pack
from minimodel.method.post import minipost_model
from minimodel.method.train import train
from minimodel.text.vocab import shared_tokens, train_tokenizer
from tests.synthetic import cipher, encipher

FAMILIES = ["bert", "roberta", "xlm-roberta"]


def tiny(family: str, lines: list[str], layers: int = 4, vocab: int = 300):
    tokenizer = models.empty_tokenizer(family).train_new_from_iterator(lines, vocab)
    model = models.build_mlm(family, tokenizer, hidden=32, layers=layers, heads=2, ffn=64, max_len=32)
    return model, tokenizer


def batches_for(tokenizer, lines, batch_size=8, seq_len=32):
    blocks = pack(tokenizer(lines)["input_ids"], seq_len)
    return mlm_batches(blocks, tokenizer, batch_size, seed=0)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_relearning_changes_only_embeddings_and_bias(family, english_lines):
    model, tokenizer = tiny(family, english_lines)
    ciphered = [encipher(s, cipher()) for s in english_lines]
    target = train_tokenizer(tokenizer, ciphered, 300)
    weight, bias = init_embeddings(model, len(target), shared_tokens(tokenizer, target))
    splice(model, weight, bias)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model.get_output_embeddings().bias is models.output_bias(model)
    only_embeddings_trainable(model)
    before = snapshot(model)
    train(model, lambda b: mlm_loss(model, b), batches_for(target, ciphered), steps=3, lr=1e-2)
    after = snapshot(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    emb = [n for n in before if n.endswith("word_embeddings.weight")]
    assert set(emb) <= changed and any(n.endswith("bias") and "predictions" in n or n == "lm_head.bias" for n in changed)
    for name in changed:
        assert name.endswith(("word_embeddings.weight", "decoder.weight", "predictions.bias", "decoder.bias", "lm_head.bias")), name


def test_minipost_alignment_leaves_the_big_model_bit_identical(english_lines):
    full, tokenizer = tiny("bert", english_lines)
    before = snapshot(full)
    mini = minipost_model(full, depth=2, top_layers=1)
    trained = {n for n, p in mini.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("bert.encoder.layer.2.", "cls.")) for n in trained)
    train(mini, lambda b: mlm_loss(mini, b), batches_for(tokenizer, english_lines), steps=3, lr=1e-2)
    after = snapshot(full)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert not torch.equal(mini.bert.encoder.layer[2].output.dense.weight, full.bert.encoder.layer[2].output.dense.weight)


@pytest.mark.parametrize("family", FAMILIES)
def test_minijoint_mini_model_is_the_full_model_at_layer_k(family, english_lines):
    model, tokenizer = tiny(family, english_lines)
    head = models.new_head(model)
    loss = joint_loss(model, head, depth=2, weight=1.0)
    train(torch.nn.ModuleList([model, head]), loss, batches_for(tokenizer, english_lines), steps=3, lr=1e-2)
    mini = models.mini_model(model, 2, head)
    model.eval(), mini.eval()
    ids = torch.tensor([tokenizer(english_lines[0])["input_ids"]])
    full_k = model.base_model(ids, output_hidden_states=True).hidden_states[2]
    assert torch.equal(mini.base_model(ids).last_hidden_state, full_k)
    assert torch.equal(mini(ids).logits, head(full_k))


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_only_loss_equals_all_positions_loss_at_masked_positions(family, english_lines):
    model, tokenizer = tiny(family, english_lines)
    model.eval()
    batch = batches_for(tokenizer, english_lines)(0)
    all_logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    reference = torch.nn.functional.cross_entropy(all_logits.view(-1, all_logits.shape[-1]), batch["labels"].view(-1))
    assert torch.allclose(mlm_loss(model, batch), reference, atol=1e-6)
    hidden = model.base_model(input_ids=batch["input_ids"]).last_hidden_state
    assert torch.allclose(mlm_loss(model, batch), masked_loss(models.mlm_head(model), hidden, batch["labels"]), atol=1e-6)


def analytic_forward(b: int, seq: int, h: int, f: int, n: int, masked: int, v: int) -> tuple[int, int, int]:
    """(layer stack, head transform, decoder) forward FLOPs of a BERT MLM step, counting a multiply-add as 2."""
    stack = n * (8 * b * seq * h * h + 4 * b * seq * h * f + 4 * b * seq * seq * h)
    return stack, 2 * masked * h * h, 2 * masked * h * v


def test_counted_flops_match_the_analytic_count_and_mini_costs_less():
    tokenizer = models.empty_tokenizer("bert").train_new_from_iterator([" ".join(f"t{i}" for i in range(3000))], 2000)
    h, f, n, v, b, seq = 128, 512, 12, len(tokenizer), 8, 64
    model = models.build_mlm("bert", tokenizer, hidden=h, layers=n, heads=4, ffn=f, max_len=seq)
    ids = torch.randint(10, v, (b, seq))
    labels = torch.full_like(ids, -100)
    labels[:, ::7] = ids[:, ::7]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    masked = int((labels != -100).sum())
    stack, transform, decoder = analytic_forward(b, seq, h, f, n, masked, v)
    counted = count_flops(lambda: mlm_loss(model, batch).backward())
    assert abs(counted - 3 * (stack + transform + decoder)) / counted < 0.10

    def relearn_step(depth: int) -> int:
        body = models.mini_model(model, depth, models.new_head(model)) if depth < n else model
        only_embeddings_trainable(body)
        return count_flops(lambda: mlm_loss(body, batch).backward())

    def predicted(depth: int) -> int:  # input gradients only through frozen weights; the tied decoder learns
        s, t, d = analytic_forward(b, seq, h, f, depth, masked, v)
        return 2 * s + 2 * t + 3 * d

    full = relearn_step(n)
    assert abs(full - predicted(n)) / full < 0.10
    for depth in (1, 2, 4):
        ratio, expected = relearn_step(depth) / full, predicted(depth) / predicted(n)
        assert ratio < 1 and abs(ratio - expected) / expected < 0.10, (depth, ratio, expected)


def test_save_load_round_trips_give_identical_logits(tmp_path, english_lines):
    full, tokenizer = tiny("roberta", english_lines)
    ids = torch.tensor([tokenizer(english_lines[1])["input_ids"]])
    joint_mini = models.mini_model(full, 2, models.new_head(full))
    post_mini = minipost_model(full, depth=1, top_layers=1, init="random")
    spliced = copy.deepcopy(full)
    target = train_tokenizer(tokenizer, [encipher(s, cipher()) for s in english_lines], 300)
    splice(spliced, *init_embeddings(full, len(target)))
    target_ids = torch.tensor([target(encipher(english_lines[1], cipher()))["input_ids"]])
    for name, model, x in (("full", full, ids), ("joint", joint_mini, ids), ("post", post_mini, ids), ("spliced", spliced, target_ids)):
        model.save_pretrained(tmp_path / name)
        loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / name)
        model.eval()
        assert torch.equal(model(x).logits, loaded(x).logits), name
    weight, bias = learned(spliced)
    assert weight.shape[0] == len(target) and bias.shape[0] == len(target)


def test_unknown_model_fails_with_its_name():
    with pytest.raises(models.ModelError, match="no-such-org/no-such-model"):
        models.load_mlm("no-such-org/no-such-model")
    with pytest.raises(models.ModelError, match="bundled:nope"):
        models.load_mlm("bundled:nope")


def test_checkpoint_resume_continues_where_it_stopped(tmp_path, english_lines):
    class Interrupted(Exception):
        pass

    def stop_at_3(point):
        if point["step"] == 3:
            raise Interrupted

    _, tokenizer = tiny("bert", english_lines)

    def run(folder, on_eval=None):
        model = models.build_mlm("bert", tokenizer, hidden=32, layers=4, heads=2, ffn=64, max_len=32)
        stats = train(
            model,
            lambda b: mlm_loss(model, b),
            batches_for(tokenizer, english_lines),
            steps=5,
            lr=1e-3,
            evaluate=dict,
            eval_every=1,
            on_eval=on_eval,
            checkpoint_dir=folder,
            checkpoint_every=1,
        )
        return model, stats

    straight, _ = run(None)
    with pytest.raises(Interrupted):  # killed after its checkpoint at step 2
        run(tmp_path / "ck", stop_at_3)
    resumed, stats = run(tmp_path / "ck")
    assert [p["step"] for p in stats["curve"]] == [0, 1, 2, 3, 4, 5]
    for (n, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_a_run_killed_while_saving_resumes_from_its_previous_checkpoint(tmp_path, english_lines, monkeypatch):
    """A kill in the middle of writing a checkpoint (here: the third save writes half its bytes and stops)
    leaves the previous checkpoint whole; the resumed run ends where an uninterrupted one does."""
    import minimodel.method.train as train_module
    from safetensors.torch import save_file

    class Killed(Exception):
        pass

    saves = []

    def dying_save(tensors, path, metadata=None):
        saves.append(path)
        save_file(tensors, path, metadata=metadata)
        if len(saves) == 3:
            with open(path, "r+b") as f:
                f.truncate(Path(path).stat().st_size // 2)
            raise Killed

    _, tokenizer = tiny("bert", english_lines)

    def run(folder):
        model = models.build_mlm("bert", tokenizer, hidden=32, layers=2, heads=2, ffn=64, max_len=32)
        stats = train(
            model,
            lambda b: mlm_loss(model, b),
            batches_for(tokenizer, english_lines),
            steps=5,
            lr=1e-3,
            evaluate=dict,
            eval_every=1,
            checkpoint_dir=folder,
            checkpoint_every=1,
        )
        return model, stats

    straight, _ = run(None)
    monkeypatch.setattr(train_module, "save_file", dying_save)
    with pytest.raises(Killed):
        run(tmp_path / "ck")
    monkeypatch.undo()
    resumed, stats = run(tmp_path / "ck")
    assert [p["step"] for p in stats["curve"]] == [0, 1, 2, 3, 4, 5]
    for (n, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_the_fused_optimizer_is_adamw(english_lines):
    """train() uses the fused AdamW kernel (one pass over the embedding matrix instead of a dozen): the
    weights it reaches are torch's reference AdamW's up to float rounding."""
    model, tokenizer = tiny("bert", english_lines, layers=2)
    only_embeddings_trainable(model)
    reference, batches = copy.deepcopy(model), batches_for(tokenizer, english_lines)
    torch.manual_seed(0)
    train(model, lambda b: mlm_loss(model, b), batches, steps=4, lr=1e-2, warmup=0.0, precision="fp32")
    params = [p for p in reference.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01, foreach=False, fused=False)
    schedule = get_linear_schedule_with_warmup(opt, 0, 4)
    torch.manual_seed(0)
    for i in range(4):
        mlm_loss(reference, batches(i)).backward()
        opt.step(), schedule.step(), opt.zero_grad()
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name


class HostSyncs(TorchDispatchMode):
    """Counts the operations that make the host wait for a GPU: reading a value (.item(), bool()) and
    selections whose size depends on data (nonzero, boolean indexing); seen here on the CPU."""

    READS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::is_nonzero", "aten::unique"}

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        indices = args[1] if name in ("aten::index", "aten::index_put_", "aten::index_put") else ()
        if name in self.READS or any(t is not None and t.dtype is torch.bool for t in indices):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_training_steps_never_wait_for_the_device(english_lines):
    """Masking, the masked-only loss, the optimizer and the compute meter run at static shapes and read
    nothing back per step: the host syncs of a run do not grow with its steps (a GPU stays busy)."""
    model, tokenizer = tiny("bert", english_lines, layers=2)
    only_embeddings_trainable(model)
    batches = batches_for(tokenizer, english_lines)
    counts = []
    for steps in (2, 6):
        with HostSyncs() as syncs:
            stats = train(model, lambda b: mlm_loss(model, b), batches, steps=steps, lr=1e-3, precision="fp32")
        counts.append(syncs.count)
        assert stats["tokens"] == steps * 8 * 32 and stats["loss"] > 0
    assert counts[0] == counts[1], counts


def test_kept_rows_change_only_by_weight_decay(english_lines):
    """keep_rows (train_shared false): the shared tokens' vectors only shrink by AdamW's decoupled decay."""
    model, tokenizer = tiny("bert", english_lines, layers=2)
    only_embeddings_trainable(model)
    keep_rows(model, [5, 6, 7])
    before = model.get_input_embeddings().weight.detach().clone()
    train(model, lambda b: mlm_loss(model, b), batches_for(tokenizer, english_lines), steps=3, lr=1e-2, warmup=0.0)
    after = model.get_input_embeddings().weight.detach()
    decay = (1 - 1e-2 * 0.01) * (1 - 1e-2 * 0.01 * 2 / 3) * (1 - 1e-2 * 0.01 / 3)  # linear schedule over 3 steps
    assert torch.allclose(after[5:8], before[5:8] * decay, rtol=1e-6, atol=0)
    assert not torch.allclose(after[8:], before[8:] * decay, rtol=1e-3)
