"""The free texts the default model's corpus is built from: which Debian package provides each,
under which licence it is distributed, and how its files become plain-text documents.

A document is one book, manual, dictionary section, web page or source file. Extractors return
text as it is in the files, minus markup and navigation; normalisation (newlines, control
characters, blank runs) is done once for all sources by the corpus builder.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable, Iterator


@dataclass(frozen=True)
class Document:
    source: str
    name: str            # stable within the source: a relative path or a section name
    text: str
    package: str = ""    # the Debian package that ships it, when known
    licence: str = ""    # set when it differs from (or refines) the source's licence


@dataclass(frozen=True)
class Source:
    name: str
    kind: str                              # "prose" or "code"
    packages: tuple[str, ...]              # Debian packages to install when absent
    licence: str
    documents: Callable[[], Iterator[Document]]


def read_text(path: Path) -> str:
    """The file's text (gzip-compressed files included); UTF-8, else Latin-1 (older manuals)."""
    data = gzip.decompress(path.read_bytes()) if path.suffix in (".gz", ".dz") else path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def owning_packages(paths: Iterable[Path]) -> dict[Path, str]:
    """Debian package of each path (by dpkg's database); paths no package owns are left out."""
    paths = sorted({Path(p) for p in paths})
    if not paths or shutil.which("dpkg-query") is None:
        return {}
    result = subprocess.run(["dpkg-query", "-S", *map(str, paths)], capture_output=True, text=True)
    owners: dict[Path, str] = {}
    for line in result.stdout.splitlines():
        package, sep, path = line.partition(": ")
        if sep and "," not in package:  # "a, b: path" means a shared directory, not a file
            owners[Path(path)] = package.split(":")[0]  # drop the ":amd64" architecture
    return owners


# ----------------------------------------------------------------------------------------------
# King James Bible (bible-kjv-text; decoded by the `bible` program of bible-kjv)

def kjv_bible() -> Iterator[Document]:
    """The whole Bible as one document: "Book N" chapter headings, then one verse per line."""
    if shutil.which("bible") is None:
        return
    # A huge line width keeps each verse on one line.
    out = subprocess.run(["bible", "-l100000", "Gen1:1-Rev22:21"], capture_output=True, text=True,
                         check=True).stdout
    lines = [line.strip() for line in out.splitlines()]
    yield Document("kjv-bible", "kjv", "\n".join(lines), package="bible-kjv-text")


# ----------------------------------------------------------------------------------------------
# GCIDE dictionary (dict-gcide)

GCIDE_PATH = Path("/usr/share/dictd/gcide.dict.dz")
# An entry starts at column 0 with its headword and the pronunciation between backslashes.
_GCIDE_HEADWORD = re.compile(r"^(\S[^\n\\]*)\\[^\n\\]*\\", re.M)
# Attribution lines such as "[1913 Webster]" or "[WordNet 1.5 +PJC]" repeat after every sense.
_GCIDE_ATTRIBUTION = re.compile(r"^[ \t]*\[[^\]\n]*(?:Webster|WordNet|PJC)[^\]\n]*\][ \t]*\n", re.M)


def gcide() -> Iterator[Document]:
    """One document per headword prefix of two letters ("ab", "ac", ...): the dictionary is one
    book, but sections of this size let a size cap take a spread of the alphabet."""
    if not GCIDE_PATH.exists():
        return
    text = read_text(GCIDE_PATH)
    starts = [m.start() for m in _GCIDE_HEADWORD.finditer(text)]
    sections: dict[str, list[str]] = {}
    for begin, end in zip(starts, starts[1:] + [len(text)]):
        entry = text[begin:end]
        head = re.sub(r"[^a-z]", "", entry[:40].lower())[:2] or "other"
        sections.setdefault(head if len(head) == 2 else head + "_", []).append(entry)
    for prefix in sorted(sections):
        body = _GCIDE_ATTRIBUTION.sub("", "".join(sections[prefix]))
        yield Document("gcide", f"gcide/{prefix}", body, package="dict-gcide")


# ----------------------------------------------------------------------------------------------
# Python documentation (python3-doc: Sphinx HTML)

_BLOCK_TAGS = {"p", "div", "section", "article", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt",
               "dd", "dl", "ul", "ol", "table", "tr", "blockquote", "figure", "figcaption",
               "caption", "hr", "pre"}
_VOID_TAGS = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
_SKIP_TAGS = {"script", "style", "nav", "footer", "form", "button", "noscript"}
_SKIP_CLASSES = {"headerlink", "sphinxsidebar", "related", "footer", "linenos"}
_LINE_BREAK = "\x00"


class _SphinxText(HTMLParser):
    """The text of a Sphinx page's main body (the element with role="main"), without the
    navigation, sidebars, permalinks and scripts around it. Paragraphs are separated by blank
    lines, list items start with "- ", and <pre> blocks keep their layout."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, starts main, skipped)
        self.in_main = 0
        self.skip = 0
        self.pre = 0
        self.inline: list[str] = []
        self.blocks: list[str] = []

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self.inline))
        text = re.sub(f" ?{_LINE_BREAK} ?", "\n", text).strip()
        if text:
            self.blocks.append(text)
        self.inline = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag in _VOID_TAGS:
            if self.in_main and not self.skip and tag == "br":
                self.inline.append(_LINE_BREAK)
            return
        starts_main = not self.in_main and attrs.get("role") == "main"
        skipped = bool(self.in_main) and (tag in _SKIP_TAGS or bool(classes & _SKIP_CLASSES))
        self.stack.append((tag, starts_main, skipped))
        self.in_main += starts_main
        self.skip += skipped
        if not self.in_main or self.skip:
            return
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag == "pre":
            self.pre += 1
        elif tag == "li":
            self.inline.append("- ")
        elif tag in ("td", "th"):
            self.inline.append(" ")

    def handle_endtag(self, tag):
        if tag in _VOID_TAGS or not any(open_tag == tag for open_tag, _, _ in self.stack):
            return
        while self.stack:  # close what was left open inside this element too
            open_tag, starts_main, skipped = self.stack.pop()
            if self.in_main and not self.skip:
                if open_tag == "pre":
                    self.pre -= 1
                    self.blocks.append("".join(self.inline).strip("\n"))
                    self.inline = []
                elif open_tag in _BLOCK_TAGS:
                    self._flush()
            self.in_main -= starts_main
            self.skip -= skipped
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self.in_main and not self.skip:
            self.inline.append(data)

    def text(self) -> str:
        self._flush()
        return "\n\n".join(block for block in self.blocks if block.strip())


def sphinx_html_text(markup: str) -> str:
    parser = _SphinxText()
    parser.feed(markup)
    parser.close()
    return parser.text()


# Pages that are indexes, tables of contents or the search form rather than documentation.
_PYTHON_DOC_SKIP = re.compile(r"^(genindex.*|contents|search|py-modindex|index|download)\.html$")


def python_docs_root() -> Path | None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for root in (Path(f"/usr/share/doc/python{version}/html"), Path("/usr/share/doc/python3-doc/html")):
        if root.is_dir():
            return root.resolve()
    return None


def python_docs() -> Iterator[Document]:
    root = python_docs_root()
    if root is None:
        return
    for path in sorted(root.rglob("*.html")):
        relative = path.relative_to(root)
        if relative.parts[0].startswith("_") or _PYTHON_DOC_SKIP.match(str(relative)):
            continue
        yield Document("python-docs", f"python-docs/{relative}", sphinx_html_text(read_text(path)),
                       package="python3-doc")


# ----------------------------------------------------------------------------------------------
# GNU Info manuals (/usr/share/info)

INFO_ROOT = Path("/usr/share/info")
_INFO_PART = re.compile(r"^(?P<manual>.+?)\.info(?:-(?P<part>\d+))?\.gz$")
# Manuals of what another source already covers (the Python documentation, as HTML).
_INFO_EXCLUDE = re.compile(r"^python\d")
# Appendix nodes with a licence's full text: the same few pages in nearly every manual.
_INFO_LICENCE_NODE = re.compile(r"^(GNU )?(Free Documentation License|General Public License|"
                                r"Lesser General Public License|FDL|GPL|GFDL)|^Copying( This Manual)?$", re.I)
_INFO_NODE_HEADER = re.compile(r"^File: [^,\n]*,\s+Node: ([^,\n]*)[^\n]*\n")
_INFO_XREF = re.compile(r"\*([Nn])ote[ \n]+([^:*]+?)(?:::|:[ \n]+[^.,;)]*[.,;])", re.S)


def info_manuals(root: Path = INFO_ROOT) -> dict[str, list[Path]]:
    """Manual name -> its files (the main file first, then parts in order). Links (alternatives
    naming the same manual twice) are followed and counted once."""
    manuals: dict[str, dict[int, Path]] = {}
    seen: set[Path] = set()
    for path in sorted(root.rglob("*.gz")):
        match = _INFO_PART.match(path.name)
        real = path.resolve()
        if not match or real in seen or _INFO_EXCLUDE.match(match["manual"]):
            continue
        seen.add(real)
        manuals.setdefault(match["manual"], {})[int(match["part"] or 0)] = real
    return {name: [parts[k] for k in sorted(parts)] for name, parts in sorted(manuals.items())}


def info_licence(text: str) -> str:
    """The licence a manual's permission notice names (its first pages)."""
    head = re.sub(r"\s+", " ", text[:20000])
    fdl = re.search(r"GNU Free Documentation License,? Version (\d\.\d)( or any later)?", head, re.I)
    if fdl:
        return f"GFDL-{fdl[1]}{'+' if fdl[2] else ''}"
    gpl = re.search(r"GNU (Lesser |Library )?General Public License[^.]*?version (\d)( [^.]*?or[^.]*?later)?",
                    head, re.I)
    if gpl:
        kind = "LGPL" if gpl[1] else "GPL"
        return f"{kind}-{gpl[2]}{'+' if gpl[3] else ''}"
    if "Permission is granted to make and distribute verbatim copies" in head:
        return "GNU verbatim-copying permission notice"
    return "see the package's copyright file"


def info_text(text: str) -> str:
    """Readable text of an Info file: the nodes without their header lines, menus, index and
    licence nodes; the preamble, indirect table and tag table are dropped."""
    nodes = []
    for segment in text.split("\x1f"):
        segment = segment.lstrip("\n")
        header = _INFO_NODE_HEADER.match(segment)
        if not header or _INFO_LICENCE_NODE.search(header[1].strip()):
            continue
        body = segment[header.end():]
        if "\x00\x08[index\x00\x08]" in body:  # an index node: only its heading would remain
            continue
        menu = re.search(r"^\* Menu:", body, re.M)
        if menu:  # a menu closes its node
            body = body[:menu.start()]
        body = _INFO_XREF.sub(lambda m: ("See " if m[1] == "N" else "see ") + " ".join(m[2].split()), body)
        if len(body.strip()) > 40:
            nodes.append(body.strip("\n"))
    return "\n\n".join(nodes)


def gnu_info(root: Path = INFO_ROOT) -> Iterator[Document]:
    manuals = info_manuals(root)
    owners = owning_packages(files[0] for files in manuals.values())
    for name, files in manuals.items():
        raw = "".join(read_text(path) for path in files)
        yield Document("gnu-info", f"info/{name}", info_text(raw), package=owners.get(files[0], ""),
                       licence=info_licence(raw))


# ----------------------------------------------------------------------------------------------
# The Jargon File (jargon-text)

JARGON_PATH = Path("/usr/share/doc/jargon-text/jargon.txt.gz")


def jargon() -> Iterator[Document]:
    if JARGON_PATH.exists():
        yield Document("jargon", "jargon", read_text(JARGON_PATH), package="jargon-text")


# ----------------------------------------------------------------------------------------------
# Licence texts (/usr/share/common-licenses, always present on Debian)

COMMON_LICENSES = Path("/usr/share/common-licenses")


def common_licenses() -> Iterator[Document]:
    if not COMMON_LICENSES.is_dir():
        return
    seen: set[Path] = set()
    for path in sorted(COMMON_LICENSES.iterdir()):
        real = path.resolve()
        if real.is_file() and real not in seen:
            seen.add(real)
            yield Document("common-licenses", f"licenses/{real.name}", read_text(real), package="base-files")


# ----------------------------------------------------------------------------------------------
# Python source code

# Machine-written code (codec tables, lexer keyword lists, rule dumps) teaches little.
_GENERATED = re.compile(r"generated|do not edit|character mapping codec", re.I)
MAX_CODE_FILE_BYTES = 256 * 1024

STDLIB_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__",
                    "lib-dynload", "pydoc_data"}


def python_file_ok(path: Path) -> bool:
    if path.stat().st_size > MAX_CODE_FILE_BYTES:
        return False
    with open(path, "rb") as f:
        head = f.read(1000).decode("utf-8", "replace")
    return not _GENERATED.search(head)


def stdlib_root() -> Path:
    return Path(shutil.__file__).resolve().parent


def python_stdlib(root: Path | None = None) -> Iterator[Document]:
    root = root or stdlib_root()
    paths = [path for path in sorted(root.rglob("*.py"))
             if not (set(path.relative_to(root).parts[:-1]) & STDLIB_SKIP_DIRS)
             and not path.relative_to(root).parts[0].startswith(("config-", "_sysconfigdata"))
             and python_file_ok(path)]
    owners = owning_packages(paths)
    for path in paths:
        yield Document("python-stdlib", f"stdlib/{path.relative_to(root)}", read_text(path),
                       package=owners.get(path, ""))


# Pure-Python Debian packages with one permissive licence each (their copyright files' "Files: *").
PYTHON_PACKAGES = {
    "python3-networkx": "BSD-3-Clause",
    "python3-sympy": "BSD-3-Clause",
    "python3-mpmath": "BSD-3-Clause",
    "python3-django": "BSD-3-Clause",
    "python3-pygments": "BSD-2-Clause",
}
PACKAGE_SKIP_DIRS = {"tests", "test", "testing", "benchmarks", "rubi", "_antlr", "locale", "__pycache__"}


def package_python_files(package: str) -> list[Path]:
    if shutil.which("dpkg-query") is None:
        return []
    listing = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True).stdout
    paths = [Path(line) for line in listing.splitlines() if line.endswith(".py")]
    return [path for path in sorted(paths)
            if path.is_file() and not (set(path.parts[:-1]) & PACKAGE_SKIP_DIRS) and python_file_ok(path)]


def python_packages() -> Iterator[Document]:
    for package, licence in PYTHON_PACKAGES.items():
        for path in package_python_files(package):
            text = str(path)
            relative = text.split("-packages/", 1)[1] if "-packages/" in text else text.lstrip("/")
            yield Document("python-packages", f"{package}/{relative}", read_text(path), package=package,
                           licence=licence)


# ----------------------------------------------------------------------------------------------

SOURCES = [
    Source("kjv-bible", "prose", ("bible-kjv", "bible-kjv-text"), "public domain", kjv_bible),
    Source("gcide", "prose", ("dict-gcide",), "GPL-2+", gcide),
    Source("python-docs", "prose", ("python3-doc",), "PSF-2.0", python_docs),
    Source("gnu-info", "prose",
           ("gnu-standards", "bash-doc", "autoconf-doc", "libtool-doc", "guile-3.0-doc", "r-doc-info"),
           "per manual (GFDL for the GNU manuals)", gnu_info),
    Source("jargon", "prose", ("jargon-text",), "public domain", jargon),
    Source("python-stdlib", "code", (), "PSF-2.0", python_stdlib),
    Source("python-packages", "code", tuple(PYTHON_PACKAGES), "BSD (per package)", python_packages),
]

SMOKE_SOURCES = [
    Source("common-licenses", "prose", (), "verbatim copying permitted (licence texts)", common_licenses),
    Source("python-stdlib", "code", (), "PSF-2.0", python_stdlib),
]

__all__ = ["Document", "Source", "SOURCES", "SMOKE_SOURCES", "read_text", "owning_packages",
           "sphinx_html_text", "info_text", "info_licence"]
