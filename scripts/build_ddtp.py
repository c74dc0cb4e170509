"""Rebuild the bundled `ddtp-topic` benchmark from Debian's archive (see data/README.md).

    python scripts/build_ddtp.py [--out data/ddtp-topic] [--work DIR] [--corpus-cap-mb 6]

Only the ordinary apt client is used, with a private lists/cache folder and a private sources
file, so the machine's apt state is left alone (except installing man-db when `man` is missing).
Everything is stdlib Python; the result is deterministic for a given archive state.

Task: Debian package descriptions (English from Translation-en, translations from the DDTP
Translation-<lang> files, joined to Packages on Description-md5), labelled with 8 topics grouped
from Sections, split 60/10/30 by a hash of the Source package so one source's binaries never
straddle splits. Targets get dev/test = translations of the English dev/test items (zero-shot).
Corpora: every description of a language minus those of dev/test source packages, plus
translated man pages and fortunes; any document equal to a dev/test text (after whitespace
normalisation and lowercasing) is dropped, so no evaluation text can be memorised in pretraining.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import glob
import hashlib
import json
import lzma
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
TARGETS = ["de", "fr", "es", "ru", "ja", "zh_CN", "it", "da", "pl", "uk", "ko", "pt_BR", "cs", "sk"]
CJK = {"ja", "zh_CN", "ko"}  # ja/zh lines are joined without spaces (ko uses spaces between words)
MIN_TEST = 50  # a target with fewer translated test items is left out

TOPICS = {
    "games": ["games"],
    "graphics": ["graphics"],
    "multimedia": ["sound", "video"],
    "science": ["science", "math", "electronics", "hamradio", "gnu-r"],
    "network": ["net", "mail", "web", "comm", "httpd", "news"],
    "admin": ["admin"],
    "text": ["text", "editors", "tex"],
    "devel": ["devel", "vcs"],
}
SECTION_TOPIC = {section: topic for topic, sections in TOPICS.items() for section in sections}

# Extra unlabeled text: (package, language). manpages-xx keep pages under usr/share/man/<lang>;
# English `manpages` under usr/share/man/man*. fortunes-zh is classical poetry and is left out.
MANPAGES = [
    ("manpages", "en"),
    ("manpages-de", "de"),
    ("manpages-fr", "fr"),
    ("manpages-es", "es"),
    ("manpages-ru", "ru"),
    ("manpages-ja", "ja"),
    ("manpages-zh", "zh_CN"),
    ("manpages-uk", "uk"),
    ("manpages-pl", "pl"),
    ("manpages-it", "it"),
    ("manpages-da", "da"),
    ("manpages-pt-br", "pt_BR"),
    ("manpages-cs", "cs"),
]
FORTUNES = [
    ("fortunes", "en"),
    ("fortunes-min", "en"),
    ("fortunes-de", "de"),
    ("fortunes-es", "es"),
    ("fortunes-ru", "ru"),
    ("fortunes-it", "it"),
    ("fortunes-pl", "pl"),
    ("fortunes-cs", "cs"),
]
# Non-Latin languages: a man page paragraph counts only if most letters are in the language's
# script (10-20% of ru/zh man page paragraphs are untranslated English).
SCRIPT = {
    "ru": "[\u0400-\u04ff]",
    "uk": "[\u0400-\u04ff]",
    "ja": "[\u3040-\u30ff\u4e00-\u9fff]",
    "zh_CN": "[\u4e00-\u9fff]",
    "ko": "[\uac00-\ud7af]",
}


def normalise(text: str) -> str:
    """The form in which leakage is checked: whitespace collapsed, lowercased."""
    return " ".join(text.split()).lower()


def split_of(source: str) -> str:
    """60/10/30 by a stable hash of the source package name."""
    bucket = int(hashlib.sha256(source.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 60 else "dev" if bucket < 70 else "test"


# --- apt ---------------------------------------------------------------------------------------


def apt_options(work: Path, languages: list[str]) -> list[str]:
    """Private lists, cache and sources, so nothing of the machine's apt state is read or changed."""
    (work / "lists/partial").mkdir(parents=True, exist_ok=True)
    (work / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    (work / "sources.d").mkdir(exist_ok=True)
    (work / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} {SUITE} main\n")
    return [
        "-o",
        f"Dir::State::Lists={work}/lists",
        "-o",
        f"Dir::Cache={work}/cache",
        "-o",
        f"Dir::Etc::SourceList={work}/sources.list",
        "-o",
        f"Dir::Etc::SourceParts={work}/sources.d",
        "-o",
        "APT::Architecture=amd64",
        "-o",
        "APT::Architectures=amd64",
        "-o",
        "APT::Sandbox::User=root",  # a mkdtemp folder is not writable by _apt
        "-o",
        "Acquire::Languages=" + ",".join(languages),
    ]


def list_file(work: Path, pattern: str) -> str:
    """Decompressed text of one downloaded index (lz4 or whatever apt chose)."""
    paths = glob.glob(str(work / "lists" / pattern))
    if len(paths) != 1:
        raise SystemExit(f"expected one index matching {pattern}, found {paths}")
    return subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", paths[0]], check=True, capture_output=True, text=True).stdout


def blocks(text: str):
    """RFC-822 stanzas as dicts; continuation lines are kept in the value with their newline."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.split("\n"):
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if fields:
            yield fields


def description_text(value: str, language: str) -> str:
    """Short description + long description on one line; ja/zh lines join without spaces."""
    short, *body = value.split("\n")
    joiner = "" if language in ("ja", "zh_CN") else " "
    paragraphs, current = [short.strip()], []
    for line in body:
        line = line[1:] if line.startswith(" ") else line
        if line.strip() == ".":
            paragraphs.append(joiner.join(current))
            current = []
        else:
            current.append(line.strip())
    paragraphs.append(joiner.join(current))
    return " ".join(p for p in paragraphs if p)


def translations(work: Path, language: str) -> dict[str, str]:
    """Description-md5 -> text, for one language's Translation file."""
    escaped = language.replace("_", "%5f")
    text = list_file(work, f"*_{SUITE}_main_i18n_Translation-{escaped}*")
    out: dict[str, str] = {}
    for block in blocks(text):
        value = block.get(f"Description-{language}")
        if value and block.get("Description-md5"):
            out.setdefault(block["Description-md5"], description_text(value, language))
    return out


# --- man pages and fortunes --------------------------------------------------------------------


def fetch_debs(work: Path, options: list[str], packages: list[str]) -> tuple[Path, dict[str, str]]:
    """`apt-get download` each package and `dpkg -x` it into its own folder under work/pkgs.

    Returns that folder and the version of each package, for the manifest."""
    debs = work / "debs"
    debs.mkdir(exist_ok=True)
    subprocess.run(["apt-get", "-q", *options, "download", *packages], cwd=debs, check=True, stdout=subprocess.DEVNULL)
    root = work / "pkgs"
    root.mkdir(exist_ok=True)
    versions = {}
    for package in packages:
        (deb,) = debs.glob(f"{package}_*.deb")
        subprocess.run(["dpkg", "-x", str(deb), str(root / package)], check=True)
        versions[package] = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        ).stdout.strip()
    return root, versions


def keep_paragraph(text: str, language: str, min_chars: int) -> bool:
    """Running text only: long enough, mostly letters, and (non-Latin) in the right script."""
    letters = [c for c in text if c.isalpha()]
    if len(text) < min_chars or len(letters) < 0.6 * len(text.replace(" ", "")):
        return False
    if language in SCRIPT:
        return len(re.findall(SCRIPT[language], text)) >= 0.5 * len(letters)
    return True


def render_man(path: Path, language: str) -> list[str]:
    """One paragraph per document; a very wide MANWIDTH makes groff put each paragraph on one line."""
    page = subprocess.run(["man", "-l", "-E", "UTF-8", str(path)], capture_output=True, env={**os.environ, "MANWIDTH": "10000"}).stdout
    plain = subprocess.run(["col", "-bx"], input=page, capture_output=True).stdout.decode()
    lines = plain.split("\n")[1:-2]  # header and footer lines
    docs = []
    for line in lines:
        text = " ".join(line.split())
        if language in ("ja", "zh_CN"):  # manpages-zh puts spaces between words
            text = re.sub(r"(?<=[\u3000-\u9fff\uff00-\uffef]) (?=[\u3000-\u9fff\uff00-\uffef])", "", text)
        if keep_paragraph(text, language, 15 if language in CJK else 40):
            docs.append(text)
    return docs


def man_docs(root: Path) -> dict[str, list[str]]:
    """Rendered paragraphs of every real (non-symlink) page, per language."""
    jobs = []
    for package, language in MANPAGES:
        base = root / package / "usr/share/man"
        folder = base if language == "en" else base / language
        for path in sorted(folder.rglob("*")):
            in_section = language != "en" or path.parent.name.startswith("man")
            if path.is_file() and not path.is_symlink() and in_section:
                jobs.append((path, language))
    out: dict[str, list[str]] = {}
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        for (_, language), docs in zip(jobs, pool.map(lambda job: render_man(*job), jobs), strict=True):
            out.setdefault(language, []).extend(docs)
    return out


def fortune_docs(root: Path) -> dict[str, list[str]]:
    """Fortune entries (split on `%` lines), one per document; offensive (`off/`) files skipped."""
    out: dict[str, list[str]] = {}
    for package, language in FORTUNES:
        for path in sorted((root / package / "usr/share/games/fortunes").rglob("*")):
            if (
                not path.is_file()
                or path.is_symlink()
                or path.suffix in (".dat", ".u8")
                or "off" in path.parts
                or path.name in ("art", "ascii-art")
            ):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            for entry in re.split(r"\n%\n", text):
                entry = " ".join(entry.replace("\r", "").split())
                if keep_paragraph(entry, language, 20):
                    out.setdefault(language, []).append(entry)
    return out


# --- assembling the benchmark ------------------------------------------------------------------


def packages_index(work: Path) -> tuple[dict[str, tuple[str, str, str | None]], set[str]]:
    """Description-md5 -> (source, package, topic) of its first package, and the md5s of every
    package whose source is in dev or test (their text must stay out of the corpora)."""
    md5_info: dict[str, tuple[str, str, str | None]] = {}
    held_out_md5: set[str] = set()
    for block in blocks(list_file(work, f"*_{SUITE}_main_binary-amd64_Packages*")):
        md5 = block.get("Description-md5")
        if not md5:
            continue
        source = block.get("Source", block["Package"]).split(" ")[0]
        topic = SECTION_TOPIC.get(block.get("Section", "").split("/")[-1])
        if split_of(source) != "train":
            held_out_md5.add(md5)
        candidate = (source, block["Package"], topic)
        if md5 not in md5_info or candidate < md5_info[md5]:
            md5_info[md5] = candidate
    return md5_info, held_out_md5


def english_items(md5_info, english: dict[str, str]) -> dict[str, list[tuple[str, str, str]]]:
    """(md5, text, topic) per split; a text seen before (normalised) is dropped, so no English
    text is in two splits."""
    items: dict[str, list[tuple[str, str, str]]] = {"train": [], "dev": [], "test": []}
    seen: set[str] = set()
    for md5, (source, _, topic) in sorted(md5_info.items(), key=lambda kv: kv[1]):
        text = english.get(md5)
        if topic and text and normalise(text) not in seen:
            seen.add(normalise(text))
            items[split_of(source)].append((md5, text, topic))
    return items


def corpus_docs(origin: dict[str, list[str]], held_out_text: set[str], cap_bytes: float):
    """Deduplicated, shuffled documents without any dev/test text, up to cap_bytes; and how many
    came from each origin."""
    docs, known = [], set(held_out_text)
    for name, candidates in origin.items():
        for doc in candidates:
            if normalise(doc) not in known:
                known.add(normalise(doc))
                docs.append((name, doc))
    random.Random(0).shuffle(docs)  # a max_docs prefix is then a uniform sample
    size, kept = 0, []
    for name, doc in docs:
        size += len(doc.encode()) + 1
        if size > cap_bytes:
            break
        kept.append((name, doc))
    return [doc for _, doc in kept], dict(Counter(name for name, _ in kept))


def build(out: Path, work: Path, cap_bytes: int) -> None:
    options = apt_options(work, ["en", *TARGETS])
    subprocess.run(["apt-get", "-q", *options, "update"], check=True, stdout=subprocess.DEVNULL)
    release = next(line for line in list_file(work, f"*_dists_{SUITE}_InRelease").split("\n") if line.startswith("Date:"))[5:].strip()

    md5_info, held_out_md5 = packages_index(work)
    texts = {"en": translations(work, "en")}
    items = english_items(md5_info, texts["en"])
    task = {"en": {split: [{"text": t, "label": y} for _, t, y in rows] for split, rows in items.items()}}
    train_texts = {normalise(r["text"]) for r in task["en"]["train"]}
    for language in TARGETS:
        texts[language] = translations(work, language)
        task[language] = {
            split: [
                {"text": texts[language][md5], "label": label}
                for md5, _, label in items[split]
                if md5 in texts[language] and normalise(texts[language][md5]) not in train_texts
            ]
            for split in ("dev", "test")
        }
        if len(task[language]["test"]) < MIN_TEST:
            print(f"{language}: only {len(task[language]['test'])} test items, left out")
            del task[language], texts[language]

    held_out_text = {normalise(r["text"]) for splits in task.values() for split, rows in splits.items() if split != "train" for r in rows}
    root, versions = fetch_debs(work, options, [p for p, _ in MANPAGES + FORTUNES])
    extra = {"man": man_docs(root), "fortunes": fortune_docs(root)}
    corpus, corpus_sources = {}, {}
    for language in task:
        origin = {"ddtp": [t for md5, t in texts[language].items() if md5 not in held_out_md5]}
        origin.update({name: docs.get(language, []) for name, docs in extra.items()})
        cap = float("inf") if language == "en" else cap_bytes  # the source corpus is kept whole
        corpus[language], corpus_sources[language] = corpus_docs(origin, held_out_text, cap)

    write_snapshot(out, task, corpus, corpus_sources, {"release_date": release, "packages": versions}, cap_bytes)


def write_xz(path: Path, lines: list[str]) -> str:
    """Write lines xz-compressed; return the sha256 of the uncompressed text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode()
    with lzma.open(path, "wb", preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def write_snapshot(out: Path, task, corpus, corpus_sources, archive: dict, cap_bytes: int) -> None:
    """Files plus manifest.json: counts per language/split/class and sha256 of the content."""
    if out.exists():
        shutil.rmtree(out)
    manifest = {
        "name": "ddtp-topic",
        "built": datetime.date.today().isoformat(),
        "archive": {"mirror": MIRROR, "suite": f"{SUITE} main", **archive},
        "classes": sorted(TOPICS),
        "sections": TOPICS,
        "corpus_cap_bytes": cap_bytes,
        "sha256": "of the uncompressed file content",
        "task": {},
        "corpus": {},
    }
    for language, splits in task.items():
        for split, rows in splits.items():
            name = f"task/{language}/{split}.jsonl.xz"
            digest = write_xz(out / name, [json.dumps(r, ensure_ascii=False) for r in rows])
            manifest["task"].setdefault(language, {})[split] = {
                "file": name,
                "sha256": digest,
                "count": len(rows),
                "classes": dict(sorted(Counter(r["label"] for r in rows).items())),
            }
    for language, docs in corpus.items():
        name = f"corpus/{language}.txt.xz"
        digest = write_xz(out / name, docs)
        manifest["corpus"][language] = {
            "file": name,
            "sha256": digest,
            "docs": len(docs),
            "bytes": sum(len(d.encode()) + 1 for d in docs),
            "sources": corpus_sources[language],
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {total / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data/ddtp-topic")
    parser.add_argument("--work", type=Path, help="keep downloads here (default: a temporary folder)")
    parser.add_argument(
        "--corpus-cap-mb",
        type=float,
        default=6.0,
        help="uncompressed MB of unlabeled text kept per target language (keeps the "
        "snapshot under 25 MB); the English corpus is kept whole",
    )
    args = parser.parse_args()
    if shutil.which("man") is None:
        subprocess.run(["apt-get", "-q", "update"], check=True)
        subprocess.run(["apt-get", "-q", "install", "-y", "man-db"], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()
        build(args.out.resolve(), work, int(args.corpus_cap_mb * 1e6))


if __name__ == "__main__":
    main()
