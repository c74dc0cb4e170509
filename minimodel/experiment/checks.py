"""Checks of what a spec points at outside its YAML: the model, the data files, and the resources a
machine or Ray cluster can give. minimodel.experiment.spec checks the YAML itself and calls these.

Every check is cheap, so `minimodel validate` stays a matter of seconds: a model is judged by its
config.json and file names (no weights loaded), a corpus is read only until it is known to support the
vocabulary asked of it, and hub datasets are not downloaded. A problem is one ValueError line (ModelError,
DataError, or ResourceError) that the caller prefixes with the spec key it came from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from minimodel.text import cipher, data
from minimodel.experiment.config import SOURCE_LANGUAGE
from minimodel.errors import UserError
from minimodel.method.models import FAMILIES, ModelError, resolve

# Files any of which makes a folder's tokenizer loadable by AutoTokenizer (fast, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model")
# Hub models of the supported families, with their depth, known without asking the hub: a spec that
# names one validates offline (as sweeps/paper.yaml must), and its depths are checked against it.
HUB_LAYERS = {
    "roberta-base": 12,
    "FacebookAI/roberta-base": 12,
    "roberta-large": 24,
    "FacebookAI/roberta-large": 24,
    "xlm-roberta-base": 12,
    "FacebookAI/xlm-roberta-base": 12,
    "xlm-roberta-large": 24,
    "FacebookAI/xlm-roberta-large": 24,
    "bert-base-cased": 12,
    "google-bert/bert-base-cased": 12,
    "bert-base-uncased": 12,
    "google-bert/bert-base-uncased": 12,
    "bert-base-multilingual-cased": 12,
    "google-bert/bert-base-multilingual-cased": 12,
}
# Token slots every tokenizer has beyond what the corpus teaches it: specials and a byte-level alphabet.
FIXED_TOKENS = 256 + 16


class VocabError(data.DataError):
    """A vocabulary larger than its corpus can yield; the message starts with the size asked."""


class ResourceError(UserError):
    """The spec asks for more CPUs or GPUs than the machine or cluster can give; one line naming the key."""


# --- models ------------------------------------------------------------------------------------


def model_config(name: str) -> dict | None:
    """The config.json of a model name, or None for `scratch` and for a hub model known only by name.

    A local or bundled folder must hold a supported masked LM's config.json and a tokenizer. A hub
    name must be a known one, in the local Hugging Face cache, or found on the hub (one request);
    when none of these can say, the run would fail too, so that is an error here already."""
    if name == "scratch":
        return None
    folder = Path(resolve(name)).expanduser()
    if name.startswith(("bundled:", "/", "./", "../", "~")) or folder.exists():
        return _folder_config(name, folder)
    if name in HUB_LAYERS:
        return {"num_hidden_layers": HUB_LAYERS[name]}
    from huggingface_hub import HfApi, constants, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except HFValidationError:
        raise ModelError(f"{name} is neither a local folder nor a valid Hugging Face model id") from None
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text())
    if not constants.HF_HUB_OFFLINE:
        try:
            HfApi().model_info(name, timeout=5)
            return None
        except GatedRepoError:
            return None
        except RepositoryNotFoundError:
            raise ModelError(f"{name} is not a local folder and not a model on the Hugging Face hub") from None
        except Exception:  # noqa: BLE001 - any network failure means: cannot tell, as offline
            pass
    raise ModelError(
        f"{name} is not a local folder, not in the Hugging Face cache, and the hub cannot be asked "
        "(offline); download it first (hf download NAME) or name a folder"
    )


def _folder_config(name: str, folder: Path) -> dict:
    config = folder / "config.json"
    if not config.is_file():
        raise ModelError(f"{name} is not a model folder (no config.json)")
    try:
        cfg = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{config}: not JSON ({e})") from None
    if cfg.get("model_type") not in FAMILIES:
        raise ModelError(f"{name} is a {cfg.get('model_type')!r} model; supported masked LMs: {', '.join(FAMILIES)}")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ModelError(
            f"{name} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save it beside the model (tokenizer.save_pretrained)"
        )
    return cfg


# --- data --------------------------------------------------------------------------------------


def check_corpus(source: str, language: str, max_docs: int, vocab_size: int) -> None:
    """A local or bundled corpus must exist, hold text, and be able to yield `vocab_size` tokens.

    A tokenizer learns at most one token per merge, and every merge shortens some distinct word by a
    symbol, so a corpus supports at most FIXED_TOKENS + its alphabet + sum(len(word) - 1) over its
    distinct words. Reading stops as soon as that bound passes vocab_size (a few lines for a real corpus)."""
    if source.startswith("hf:"):
        return
    base = cipher.base_language(language)  # a cipher maps letters one to one: the same bound
    words: set[str] = set()
    letters: set[str] = set()
    bound, docs = FIXED_TOKENS, 0
    for doc in data.read_corpus(source, base, max_docs):
        docs += 1
        for word in doc.split():
            if word not in words:
                words.add(word)
                new = set(word) - letters
                letters |= new
                bound += len(word) - 1 + len(new)
        if bound >= vocab_size:
            return
    raise VocabError(
        f"{vocab_size} tokens are more than the {language} corpus {source} can yield "
        f"(at most {bound} from its {len(words)} distinct words in {docs} documents); "
        "lower it or give more text"
    )


def check_task(source: str, languages: Iterable[str]) -> None:
    """Every split a sweep reads parses (file and line named otherwise), and no dev or test label is one
    the English training set never saw. Hub tasks are not downloaded here."""
    if source.startswith("hf:"):
        return
    train = data.read_task(source, SOURCE_LANGUAGE, "train")
    labels = None if data.is_qa(train) else {row["label"] for row in train}
    for language in [SOURCE_LANGUAGE, *sorted({cipher.base_language(x) for x in languages} - {SOURCE_LANGUAGE})]:
        for split in ("dev", "test"):
            data.read_task(source, language, split, labels)


# --- resources ---------------------------------------------------------------------------------


def machine_resources() -> list[dict[str, float]]:
    """This machine as one node: its CPUs (those this process may use) and CUDA GPUs."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return [{"CPU": float(cpus), "GPU": float(torch.cuda.device_count())}]


def check_resources(resources: dict, stages: dict, nodes: list[dict[str, float]] | None, where: str, hint: str = "") -> None:
    """What a trial and a shared-stage job ask for must fit the nodes: each trial (its own process and
    each of its Train workers) and each stage worker on some node, and a whole trial or stage job in
    the cluster at once. Ray would otherwise wait forever for resources that never come."""
    if not nodes:
        return
    most = {k: max(n.get(k, 0.0) for n in nodes) for k in ("CPU", "GPU")}
    total = {k: sum(n.get(k, 0.0) for n in nodes) for k in ("CPU", "GPU")}
    offer = f"{where} has {_amount(total)}" + (f", at most {_amount(most)} on one node" if len(nodes) > 1 else "")
    asks = [
        ("resources.cpus", resources["cpus"], "CPU", 1),
        ("resources.gpus", resources["gpus"], "GPU", 1),
        ("resources.cpus_per_worker", resources["cpus_per_worker"], "CPU", resources["workers"]),
        ("resources.gpus_per_worker", resources["gpus_per_worker"], "GPU", resources["workers"]),
        ("stages.cpus_per_worker", stages["cpus_per_worker"], "CPU", stages["workers"]),
        ("stages.gpus_per_worker", stages["gpus_per_worker"], "GPU", stages["workers"]),
    ]
    for key, amount, kind, count in asks:
        if count and amount > most[kind]:
            raise ResourceError(f"{key}: {amount:g} {kind} on one node, but {offer}{hint}")
    trial = {
        k: (resources["cpus"] if k == "CPU" else resources["gpus"]) + resources["workers"] * resources[f"{k.lower()}s_per_worker"]
        for k in ("CPU", "GPU")
    }
    stage = {k: stages["workers"] * stages[f"{k.lower()}s_per_worker"] for k in ("CPU", "GPU")}
    for key, need in (("resources", trial), ("stages", stage)):
        for kind in ("CPU", "GPU"):
            if need[kind] > total[kind] + 1e-9:
                raise ResourceError(
                    f"{key}: one {'trial' if key == 'resources' else 'stage job'} needs {need[kind]:g} {kind} in all, but {offer}{hint}"
                )


def _amount(resources: dict[str, float]) -> str:
    return f"{resources['CPU']:g} CPU and {resources['GPU']:g} GPU"
