"""MiniJoint: pretrain one model with a second MLM head on top of layer k.

loss = full MLM + weight * mini MLM, from one forward pass (layer k's hidden states are read off it).
The mini-model (embeddings + layers[:k] + the second head) shares every weight with the full model.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from transformers import PreTrainedModel

from minimodel.method.mlm import masked_loss
from minimodel.method.models import mlm_head


def joint_loss(model: PreTrainedModel, mini_head: nn.Module, depth: int, weight: float) -> Callable[[dict], torch.Tensor]:
    def loss(batch: dict) -> torch.Tensor:
        hidden = model.base_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        ).hidden_states
        full = masked_loss(mlm_head(model), hidden[-1], batch["labels"], batch.get("masked"))
        mini = masked_loss(mini_head, hidden[depth], batch["labels"], batch.get("masked"))
        return full + weight * mini

    return loss
