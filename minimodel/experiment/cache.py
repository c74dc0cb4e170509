"""The on-disk cache of stages, vocabularies and token blocks: entries written whole, checked, built once.

An entry is a folder. It is built under a temporary name, given a manifest of its files' sizes and
SHA-256 sums, then renamed into place; a reader that finds the manifest missing or any file truncated
or changed treats the entry as absent and it is rebuilt, never loaded. Builders take an exclusive
lock per entry (fcntl.flock on a file beside it, released by the kernel when a process dies), so two
sweeps sharing one cache never compute the same entry at once: the second waits, then reads what the
first published. The temporary folder keeps its name, so a killed builder's checkpoints are found by
the next one. Under torch.distributed every rank computes, rank 0 holds the lock, decides and writes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from minimodel.experiment.config import config_hash, file_sha256
from minimodel.method.mlm import pack
from minimodel.method.train import distributed

MANIFEST = "manifest.json"
_verified: dict[Path, int] = {}  # entries checked in this process: manifest path -> its mtime_ns


def partial(entry: Path) -> Path:
    """Where an entry is built (its checkpoints live there until it is published)."""
    return entry.with_name(entry.name + ".partial")


def valid(entry: str | Path) -> bool:
    """True if the entry is published and every file in its manifest has its recorded size and checksum."""
    manifest = Path(entry) / MANIFEST
    try:
        stamp = manifest.stat().st_mtime_ns
        if _verified.get(manifest) == stamp:
            return True
        files = json.loads(manifest.read_text())
        ok = all(
            (Path(entry) / name).stat().st_size == size and file_sha256(Path(entry) / name) == digest
            for name, (size, digest) in files.items()
        )
    except (OSError, ValueError, TypeError):
        return False
    if ok:
        _verified[manifest] = stamp
    return ok


def build(entry: str | Path, compute: Callable[[Path], None]) -> bool:
    """Make sure `entry` is published: unless a valid one exists, compute(tmp) writes its files into a
    temporary folder (rank 0 writes, the others only compute), which is checksummed and renamed into
    place. Returns True if this call computed it."""
    entry = Path(entry)
    rank, world = distributed()
    with _lock(entry) if rank == 0 else nullcontext():
        todo = _agree(not valid(entry) if rank == 0 else False)
        if todo:
            tmp = partial(entry)
            tmp.mkdir(parents=True, exist_ok=True)
            compute(tmp)
            if rank == 0:
                _publish(tmp, entry)
    if world > 1:
        dist.barrier()  # the other ranks read the entry only once rank 0 has published it
    return todo


def cached_tokenizer(folder: Path, train: Callable[[], PreTrainedTokenizerBase]) -> PreTrainedTokenizerBase:
    """A tokenizer trained once into `folder` and loaded from there afterwards.

    Under torch.distributed rank 0 trains it and the other ranks load what it wrote, so that every
    rank has the same vocabulary even where training is not deterministic (Unigram).
    """
    build(folder, lambda tmp: train().save_pretrained(tmp) if distributed()[0] == 0 else None)
    return AutoTokenizer.from_pretrained(folder)


def token_blocks(tokenizer: PreTrainedTokenizerBase, texts: list[str], seq_len: int, cache_dir: str | Path) -> torch.Tensor:
    """Packed [n, seq_len] token blocks of a corpus, cached per (tokenizer, corpus, seq_len)."""
    key = config_hash(tokenizer.backend_tokenizer.to_str(), text_digest(texts), seq_len)
    entry = Path(cache_dir) / "tokens" / key

    def compute(tmp: Path) -> None:
        if distributed()[0] == 0:
            save_file({"blocks": pack(tokenizer(texts, truncation=False)["input_ids"], seq_len)}, tmp / "blocks.safetensors")

    build(entry, compute)
    return load_file(entry / "blocks.safetensors")["blocks"]


def text_digest(texts: list[str]) -> str:
    """sha256 of a corpus's documents: what a cache entry computed from the text depends on."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
    return digest.hexdigest()


def _publish(tmp: Path, entry: Path) -> None:
    """Checksum every file of tmp into its manifest (written last), then rename tmp to entry."""
    (tmp / MANIFEST).unlink(missing_ok=True)
    files = {str(p.relative_to(tmp)): [p.stat().st_size, file_sha256(p)] for p in sorted(tmp.rglob("*")) if p.is_file()}
    (tmp / MANIFEST).write_text(json.dumps(files, indent=1))
    _fsync_tree(tmp)
    shutil.rmtree(entry, ignore_errors=True)  # a damaged entry found invalid above
    tmp.rename(entry)


@contextmanager
def _lock(entry: Path) -> Iterator[None]:
    """An exclusive lock on `entry` across processes and, on a shared file system with flock, machines."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.with_name(entry.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _agree(todo: bool) -> bool:
    """Rank 0's decision, for every rank (all of them must compute, or none)."""
    if distributed()[1] == 1:
        return todo
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([int(todo)], device=on)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def _fsync_tree(folder: Path) -> None:
    """Flush the entry's files to disk before it is published (a crash must not publish empty files)."""
    for p in folder.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
