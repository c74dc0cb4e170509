"""MiniPost: carve a mini-model out of a pretrained one and align a small new top to it.

Embeddings + layers[:k] stay frozen (they are the big model's); m new layers, initialised from
layers k..k+m-1 or at random, and a copy of the MLM head are trained by MLM on source text.
"""

from __future__ import annotations

import copy

import torch
from transformers import PreTrainedModel

from minimodel.method.models import layers, mini_model, new_head, trainable


def minipost_model(full: PreTrainedModel, depth: int, top_layers: int = 1, init: str = "copy", seed: int = 0) -> PreTrainedModel:
    """The mini-model to align: frozen bottom shared with `full`, trainable new top and head."""
    body = layers(full)
    if init == "copy" and depth + top_layers > len(body):
        raise ValueError(f"copy init needs layers {depth}..{depth + top_layers - 1} but the model has {len(body)}")
    if init == "copy":
        top = [copy.deepcopy(body[depth + i]) for i in range(top_layers)]
    else:
        torch.manual_seed(seed)
        top = [copy.deepcopy(body[0]) for _ in range(top_layers)]
        for layer in top:
            layer.apply(full._init_weights)
    trainable(full, False)
    mini = mini_model(full, depth, new_head(full), top)
    trainable(mini, True)
    trainable(mini.base_model.embeddings, False)
    for layer in body[:depth]:
        trainable(layer, False)
    return mini
