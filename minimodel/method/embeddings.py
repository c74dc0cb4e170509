"""New word embeddings for a target vocabulary, and splicing them into a model.

Only the word embeddings and the (tied) output bias are language-specific; position and token-type
embeddings and the embedding LayerNorm stay the source model's.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from minimodel.method.models import output_bias, trainable


def init_embeddings(
    source: PreTrainedModel, vocab_size: int, shared: dict[int, int] | None = None, seed: int = 0, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) for a new vocabulary: random around the source embeddings' mean with `scale` times
    their spread, then (overlap init) the source's vector and bias copied for every shared token."""
    src_w = source.get_input_embeddings().weight.detach()
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(vocab_size, src_w.shape[1], generator=g) * (scale * src_w.std()) + src_w.mean()
    if shared:
        weight[torch.tensor(list(shared))] = src_w[torch.tensor(list(shared.values()))].float()
    return weight, shared_bias(source, vocab_size, shared)


def shared_bias(source: PreTrainedModel, vocab_size: int, shared: dict[int, int] | None) -> torch.Tensor:
    """The MLM output bias of a new vocabulary: the source's for the rows copied from it, else zero
    (FOCUS and WECHSEL give word embeddings only)."""
    bias = torch.zeros(vocab_size)
    if shared:
        bias[torch.tensor(list(shared))] = output_bias(source).detach()[torch.tensor(list(shared.values()))].float()
    return bias


def splice(model: PreTrainedModel, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    """Give `model` a new vocabulary: resize (keeps an MLM decoder tied) and copy the new rows in.

    `bias` is the MLM output bias; classifiers have none.
    """
    model.resize_token_embeddings(weight.shape[0], mean_resizing=False)
    decoder = model.get_output_embeddings()
    if decoder is not None:  # tie explicitly: not every transformers 5.x release re-ties after a resize
        decoder.weight = model.get_input_embeddings().weight
        decoder.bias = output_bias(model)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(weight)
        if bias is not None:
            output_bias(model).copy_(bias)


def learned(model: PreTrainedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The language-specific part of a model: (word embeddings, output bias)."""
    return model.get_input_embeddings().weight.detach().clone(), output_bias(model).detach().clone()


def only_embeddings_trainable(model: PreTrainedModel) -> None:
    """Freeze everything but the word embeddings and the output bias (the standard relearning recipe).

    Their gradient is dense every step, not only at the batch's tokens: the decoder is tied to the
    word embeddings and the softmax gives every row a gradient. A sparse or row-wise update would
    change what AdamW computes; train() keeps the dense update and makes it one fused pass.
    """
    trainable(model, False)
    model.get_input_embeddings().weight.requires_grad_(True)
    output_bias(model).requires_grad_(True)


def keep_rows(model: PreTrainedModel, rows: list[int]) -> None:
    """Zero the gradients of these rows of the word embeddings and the output bias, so that they keep
    their values (AdamW's decoupled weight decay still shrinks them by lr * decay per step).

    The row index is copied to the gradient's device once, not every step (a copy that waits on a GPU).
    """
    index = {"cpu": torch.tensor(rows)}

    def zero_rows(grad: torch.Tensor) -> torch.Tensor:
        key = str(grad.device)
        if key not in index:
            index[key] = index["cpu"].to(grad.device)
        return grad.index_fill(0, index[key], 0.0)

    for param in (model.get_input_embeddings().weight, output_bias(model)):
        param.register_hook(zero_rows)
