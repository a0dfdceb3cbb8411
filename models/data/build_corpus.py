"""Builds the default model's training corpus from free texts that Debian packages ship, with
whole books held out for evaluation and each source's licence recorded.

    python3 models/data/build_corpus.py --out models/data/out
    python3 models/data/build_corpus.py --out /tmp/corpus --smoke     # tiny, nothing installed

Writes, under --out:
    train.txt           training documents, joined by DOC_SEPARATOR
    heldout_book.txt    a long prose book (the King James Bible), never trained on
    heldout_code.txt    whole Python standard library packages (email, json), never trained on
    heldout_prose.txt   one whole GNU manual (sed), never trained on
    manifest.json       per source: packages, licence, documents and bytes per split; per document
                        the same, and why a dropped one was dropped

Documents are normalised (UTF-8, "\\n" newlines, no control characters other than tab and
newline, no trailing spaces, at most two blank lines in a row), near-empty ones dropped, exact
and near duplicates (same first and last 2 KiB) dropped, and each source's training share capped.
Every list is sorted and the training order is a hash order, so the output is reproducible.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sources import SMOKE_SOURCES, SOURCES, Document, Source  # noqa: E402

END_OF_TEXT = "<|endoftext|>"
DOC_SEPARATOR = f"\n{END_OF_TEXT}\n"
SPLITS = ("train", "heldout_book", "heldout_code", "heldout_prose")
MIN_DOC_CHARS = 200
NEAR_DUPLICATE_CHARS = 2048
MIN_BOOK_BYTES = 1_100_000  # comfortably more than 256k tokens of a 4k-vocabulary BPE


@dataclass(frozen=True)
class HeldOut:
    """Documents of `source` that go to `split`: those named in `names` (a name ending in "/"
    matches every document under it), all of the source when `names` is empty, or only the first
    name the source has when `first_present`."""
    split: str
    source: str
    names: tuple[str, ...] = ()
    first_present: bool = False

    def select(self, docs: list[Document]) -> set[str]:
        def matches(name: str, pattern: str) -> bool:
            return name.startswith(pattern) if pattern.endswith("/") else name == pattern

        names = [d.name for d in docs if d.source == self.source]
        if not self.names:
            return set(names)
        if self.first_present:
            for pattern in self.names:
                chosen = {n for n in names if matches(n, pattern)}
                if chosen:
                    return chosen
            return set()
        return {n for n in names if any(matches(n, p) for p in self.names)}


@dataclass(frozen=True)
class Plan:
    sources: list[Source]
    heldout: list[HeldOut]
    max_bytes_per_source: int
    min_book_bytes: int


FULL_HELDOUT = [
    # The New Testament alone is under 1 MB, so the whole Bible is held out.
    HeldOut("heldout_book", "kjv-bible"),
    HeldOut("heldout_code", "python-stdlib", ("stdlib/email/", "stdlib/json/")),
    HeldOut("heldout_prose", "gnu-info", ("info/sed", "info/grep", "info/gzip", "info/diffutils"),
            first_present=True),
]
SMOKE_HELDOUT = [
    HeldOut("heldout_book", "common-licenses", ("licenses/GPL-3",)),
    HeldOut("heldout_prose", "common-licenses", ("licenses/GFDL-1.3",)),
    HeldOut("heldout_code", "python-stdlib", ("stdlib/json/",)),
]


@dataclass
class Entry:
    """A document on its way through the pipeline."""
    doc: Document
    kind: str
    text: str
    split: str = "train"
    dropped: str = ""                  # why it is not written, if it is not
    duplicate_of: str = ""

    @property
    def bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def key(self) -> str:
        return f"{self.doc.source}:{self.doc.name}"


# ----------------------------------------------------------------------------------------------
# Normalisation and de-duplication

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{4,}")


def normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    text = text.replace(END_OF_TEXT, "")  # the separator must stay unambiguous
    text = _TRAILING_SPACE.sub("\n", text + "\n")
    text = _BLANK_RUN.sub("\n\n\n", text)
    return text.strip("\n")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def near_key(text: str) -> str:
    return digest(text[:NEAR_DUPLICATE_CHARS] + "\x00" + text[-NEAR_DUPLICATE_CHARS:])


def deduplicate(entries: list[Entry]) -> None:
    """Marks repeats dropped, keeping the first of each. Held-out entries come first, so a
    training copy of a held-out text is the one dropped."""
    exact: dict[str, str] = {}
    near: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: e.split == "train"):  # stable: source order kept
        if entry.dropped:
            continue
        full, edges = digest(entry.text), near_key(entry.text)
        if full in exact:
            entry.dropped, entry.duplicate_of = "duplicate", exact[full]
        elif edges in near:
            entry.dropped, entry.duplicate_of = "near-duplicate", near[edges]
        else:
            exact[full] = near[edges] = entry.key


def cap_training(entries: list[Entry], max_bytes: int) -> None:
    """Keeps each source's training documents, taken in hash order, while they fit in max_bytes
    (a document that does not fit is skipped and smaller ones after it may still fit)."""
    by_source: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.split == "train" and not entry.dropped:
            by_source.setdefault(entry.doc.source, []).append(entry)
    for group in by_source.values():
        total = 0
        for entry in sorted(group, key=lambda e: digest(e.key)):
            if total + entry.bytes <= max_bytes:
                total += entry.bytes
            else:
                entry.dropped = "over source cap"


# ----------------------------------------------------------------------------------------------
# Packages

def missing_packages(packages: list[str]) -> list[str]:
    if shutil.which("dpkg-query") is None:
        return []
    result = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages],
                            capture_output=True, text=True)
    installed = {line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def install_packages(packages: list[str]) -> None:
    missing = missing_packages(packages)
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(f"warning: cannot install {' '.join(missing)} (needs apt-get as root); "
              "their sources will be missing", file=sys.stderr)
        return
    print(f"installing {' '.join(missing)}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        # The package lists may be missing or stale.
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL)
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            print(f"warning: installing {' '.join(missing)} failed; their sources will be missing",
                  file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# Building

@dataclass
class Corpus:
    entries: list[Entry] = field(default_factory=list)

    def written(self, split: str) -> list[Entry]:
        return [e for e in self.entries if e.split == split and not e.dropped]


def collect(plan: Plan) -> Corpus:
    corpus = Corpus()
    for source in plan.sources:
        for doc in source.documents():
            entry = Entry(doc, source.kind, normalize(doc.text))
            if len(entry.text) < MIN_DOC_CHARS:
                entry.dropped = "near-empty"
            corpus.entries.append(entry)
    docs = [e.doc for e in corpus.entries if not e.dropped]
    for rule in plan.heldout:
        chosen = rule.select(docs)
        for entry in corpus.entries:
            if entry.doc.source == rule.source and entry.doc.name in chosen:
                entry.split = rule.split
    deduplicate(corpus.entries)
    cap_training(corpus.entries, plan.max_bytes_per_source)
    return corpus


def check(corpus: Corpus, plan: Plan) -> None:
    for split in SPLITS:
        if not corpus.written(split):
            raise SystemExit(f"error: no documents for {split} (are the packages installed?)")
    book = sum(e.bytes for e in corpus.written("heldout_book"))
    if book < plan.min_book_bytes:
        raise SystemExit(f"error: heldout_book has {book} bytes, fewer than {plan.min_book_bytes}")
    prose = [e for e in corpus.written("train") if e.kind == "prose"]
    if not prose:
        raise SystemExit("error: no prose left for training")


def read_documents(path: str | os.PathLike) -> list[str]:
    """The documents of a file this script wrote."""
    text = Path(path).read_text(encoding="utf-8")
    return text.split(DOC_SEPARATOR) if text else []


def write(corpus: Corpus, plan: Plan, out: Path, mode: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for split in SPLITS:
        entries = corpus.written(split)
        # Training documents in hash order mix the sources; held-out ones stay in name order.
        order = (lambda e: digest(e.key)) if split == "train" else (lambda e: e.key)
        text = DOC_SEPARATOR.join(e.text for e in sorted(entries, key=order))
        path = out / f"{split}.txt"
        path.write_text(text, encoding="utf-8", newline="")
        files[path.name] = {"documents": len(entries), "bytes": len(text.encode("utf-8")),
                            "sha256": digest(text)}

    sources = []
    for source in plan.sources:
        entries = [e for e in corpus.entries if e.doc.source == source.name]
        splits = {}
        for split in SPLITS:
            chosen = [e for e in entries if e.split == split and not e.dropped]
            if chosen:
                splits[split] = {"documents": len(chosen), "bytes": sum(e.bytes for e in chosen)}
        dropped: dict[str, int] = {}
        for e in entries:
            if e.dropped:
                dropped[e.dropped] = dropped.get(e.dropped, 0) + 1
        sources.append({
            "name": source.name,
            "kind": source.kind,
            "packages": sorted({e.doc.package for e in entries if e.doc.package} | set(source.packages)),
            "licence": source.licence,
            "document_licences": sorted({e.doc.licence for e in entries if e.doc.licence}),
            "documents": len(entries),
            "splits": splits,
            "dropped": dict(sorted(dropped.items())),
        })

    documents = []
    for e in sorted(corpus.entries, key=lambda e: e.key):
        record = {"name": e.key, "source": e.doc.source, "package": e.doc.package,
                  "licence": e.doc.licence or next(s.licence for s in plan.sources if s.name == e.doc.source),
                  "bytes": e.bytes, "split": "dropped" if e.dropped else e.split}
        if e.dropped:
            record["reason"] = e.dropped
            if e.duplicate_of:
                record["duplicate_of"] = e.duplicate_of
        documents.append(record)

    manifest = {
        "mode": mode,
        "separator": DOC_SEPARATOR,
        "max_bytes_per_source": plan.max_bytes_per_source,
        "files": files,
        "sources": sources,
        "documents": documents,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    return manifest


def print_table(manifest: dict) -> None:
    mb = 1e6
    header = f"{'source':<16} {'kind':<6} {'docs':>6} {'train MB':>9} {'held MB':>8}  held-out split / dropped"
    print(header)
    print("-" * len(header))
    totals = {"prose": 0, "code": 0}
    for s in manifest["sources"]:
        train = s["splits"].get("train", {}).get("bytes", 0)
        held = {k: v for k, v in s["splits"].items() if k != "train"}
        totals[s["kind"]] += train
        notes = ", ".join([f"{k} {v['documents']}" for k, v in held.items()]
                          + [f"{n} {reason}" for reason, n in s["dropped"].items()])
        print(f"{s['name']:<16} {s['kind']:<6} {s['documents']:>6} {train / mb:>9.2f} "
              f"{sum(v['bytes'] for v in held.values()) / mb:>8.2f}  {notes}")
    print("-" * len(header))
    total = sum(totals.values()) or 1
    for name, info in manifest["files"].items():
        print(f"{name:<18} {info['documents']:>6} docs {info['bytes'] / mb:>8.2f} MB")
    print(f"training text: {totals['prose'] / mb:.1f} MB prose ({100 * totals['prose'] / total:.0f}%), "
          f"{totals['code'] / mb:.1f} MB code ({100 * totals['code'] / total:.0f}%)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny corpus from files every Debian system has (no installs)")
    parser.add_argument("--no-install", action="store_true", help="do not install missing packages")
    parser.add_argument("--max-mb-per-source", type=float, default=None,
                        help="cap on each source's training text (default 16, smoke 0.3)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    max_mb = args.max_mb_per_source if args.max_mb_per_source is not None else (0.3 if args.smoke else 16.0)
    if args.smoke:
        plan = Plan(SMOKE_SOURCES, SMOKE_HELDOUT, int(max_mb * 1e6), min_book_bytes=1)
    else:
        plan = Plan(SOURCES, FULL_HELDOUT, int(max_mb * 1e6), min_book_bytes=MIN_BOOK_BYTES)
        if not args.no_install:
            install_packages(sorted({p for s in plan.sources for p in s.packages}))
    corpus = collect(plan)
    check(corpus, plan)
    manifest = write(corpus, plan, args.out, "smoke" if args.smoke else "full")
    print_table(manifest)
    print(f"wrote {args.out} in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
