"""The default tokenizer's toolchain: a byte-level BPE trained with HF `tokenizers`
(models/train_tokenizer.py) on the smoke corpus (models/data/build_corpus.py --smoke), written
into a model file with gguf_tokenizer_keys, must tokenize exactly as HF does in the runtime,
and detokenize back to the text."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")

from models import runtime  # noqa: E402
from models.make_tiny import make_random_model  # noqa: E402
from models.tokenizer_ref import TOKEN_CONTROL, TOKEN_NORMAL  # noqa: E402
from models.train_tokenizer import (DOC_SEPARATOR, END_OF_TEXT, gguf_tokenizer_keys, read_documents,  # noqa: E402
                                    train_tokenizer)

REPO = Path(__file__).resolve().parents[2]
VOCAB_SIZE = 600
TINY = dict(n_layers=1, d_model=16, cema_ndim=2, n_attn_heads=1, z_dim=8, value_dim=16, ffn_dim=32,
            chunk_size=8, norm_groups=2)

FIXED_TEXTS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.\nIt's 10:30 -- don't be late!",
    "I'm sure they're here; we'll see, you've been, he'd go. DON'T SHOUT, It'S odd, ''s, \u2019s",
    # code
    "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n\n\nclass A(B):\n\tpass\n",
    "if (a != b && c <= d) { printf(\"%d\\n\", a->b[i++]); }",
    # whitespace runs
    "a  b   c    d",
    "   leading spaces", "trailing spaces   ", "   ", " ", "\n", "\n\n\n", "\t\t\tx",
    "line one\r\nline two\r\n", "a \n b", "x\n   \n   y", "tabs\t \t mixed \n\t end",
    "no\u00a0break\u3000ideographic\u2028separator\u2003em\x0bvt\x0cff\x85nel",
    # numbers
    "3.14159 2,718 1000000 0x1F 1e-10 ½ ² Ⅻ ٣٤٥ १२३ 〇 𝟙𝟚",
    "1234567890123456789012345678901234567890",
    # unicode
    "café naïve Über crème brûlée façade jalapeño Ærøskøbing",
    "e\u0301 a\u0308 n\u0303\u0323 (combining marks)",
    "日本語のテキストです。中文字符，한국어 텍스트",
    "emoji 😀 👍🏽 👨\u200d👩\u200d👧\u200d👦 🇩🇪 ❤️ 🙂🙃",
    "Ελληνικά, русский текст, العربية, עברית, हिन्दी भाषा, ภาษาไทย",
    "ǅ ǈ ʰ ª ß ẞ ﬁ ℌ ∑∫√ ≠ ≤ → ← ∞",
    "\U0001F600\U0001F680\U0001F4A9 mixed\U0001F600letters",
]

RANDOM_POOL = (["the", " the", "The", "and", " of", "x", "_", "__init__", "self", "0", "42", "3.5", "'s", "'t",
                "'re", "'ll", " ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\r\n", "\u00a0", "\u3000", ".", ",",
                "!", "?", "...", "->", "==", "{", "}", "(", ")", "\"", "'", "#", "@", "é", "ß", "Ω", "дом",
                "中文", "日本", "한국", "😀", "👍🏽", "e\u0301", "½", "٣", "\u200b", "-", "—", "…"])


def random_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randrange(1, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke_corpus")
    subprocess.run([sys.executable, str(REPO / "models" / "data" / "build_corpus.py"), "--smoke", "--out", str(out)],
                   check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def hf_tokenizer(corpus, tmp_path_factory):
    tokenizer = train_tokenizer(read_documents([corpus / "train.txt"]), vocab_size=VOCAB_SIZE)
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    tokenizer.save(str(path))
    return tokenizers.Tokenizer.from_file(str(path)), path  # as it was saved, not as trained


@pytest.fixture(scope="module")
def runtime_tokenizer(hf_tokenizer, runtime_library, tmp_path_factory):
    _, path = hf_tokenizer
    model_path = make_random_model(tmp_path_factory.mktemp("model") / "model.gguf",
                                   tokenizer_keys=gguf_tokenizer_keys(path), **TINY)
    model = runtime.Model(model_path, n_threads=1)
    yield model
    model.close()


def test_smoke_corpus(corpus):
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert manifest["separator"] == DOC_SEPARATOR
    sizes = {name: (corpus / name).stat().st_size for name in manifest["files"]}
    assert set(sizes) == {"train.txt", "heldout_book.txt", "heldout_code.txt", "heldout_prose.txt"}
    assert 0 < sum(sizes.values()) < 1_000_000
    train = set(read_documents([corpus / "train.txt"]))
    for name in ("heldout_book.txt", "heldout_code.txt", "heldout_prose.txt"):
        held = set(read_documents([corpus / name]))
        assert held and not held & train
    for source in manifest["sources"]:
        assert source["licence"]


def test_vocabulary_layout(hf_tokenizer):
    hf, path = hf_tokenizer
    keys = gguf_tokenizer_keys(path)
    tokens = keys["tokenizer.ggml.tokens"][1]
    assert len(tokens) == hf.get_vocab_size() == VOCAB_SIZE
    assert all(hf.token_to_id(piece) == i for i, piece in enumerate(tokens))
    assert tokens[-1] == END_OF_TEXT
    assert keys["tokenizer.ggml.token_type"][1] == [TOKEN_NORMAL] * (VOCAB_SIZE - 1) + [TOKEN_CONTROL]
    assert keys["tokenizer.ggml.bos_token_id"][1] == keys["tokenizer.ggml.eos_token_id"][1] == VOCAB_SIZE - 1
    byte_symbols = set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    assert len(byte_symbols) == 256 and byte_symbols <= set(tokens)
    merges = keys["tokenizer.ggml.merges"][1]
    assert len(merges) == VOCAB_SIZE - 257
    assert all(a + b in set(tokens) for a, b in (m.split(" ") for m in merges))


def _assert_same(model, hf, text: str) -> None:
    expected = hf.encode(text).ids
    got = model.tokenize(text)
    assert got == expected, f"{text!r}: runtime {got} != HF {expected}"
    assert model.detokenize(got) == text.encode("utf-8")
    assert hf.decode(expected) == text


@pytest.mark.parametrize("index", range(len(FIXED_TEXTS)))
def test_fixed_texts(runtime_tokenizer, hf_tokenizer, index):
    _assert_same(runtime_tokenizer, hf_tokenizer[0], FIXED_TEXTS[index])


def test_random_texts(runtime_tokenizer, hf_tokenizer):
    for text in random_texts(800):
        _assert_same(runtime_tokenizer, hf_tokenizer[0], text)


def test_held_out_documents(runtime_tokenizer, hf_tokenizer, corpus):
    """Whole documents the tokenizer was not trained on: prose, a licence text, Python code."""
    for name in ("heldout_book.txt", "heldout_code.txt", "heldout_prose.txt"):
        for doc in read_documents([corpus / name]):
            _assert_same(runtime_tokenizer, hf_tokenizer[0], doc)


def test_end_of_text(runtime_tokenizer, hf_tokenizer):
    hf = hf_tokenizer[0]
    text = f"first document{DOC_SEPARATOR}second one"
    ids = runtime_tokenizer.tokenize(text, parse_special=True)
    assert ids == hf.encode(text).ids
    assert ids.count(VOCAB_SIZE - 1) == 1
    assert runtime_tokenizer.detokenize(ids, render_special=True) == text.encode("utf-8")
    # As plain text the marker is ordinary bytes.
    plain = runtime_tokenizer.tokenize(text)
    assert VOCAB_SIZE - 1 not in plain and runtime_tokenizer.detokenize(plain) == text.encode("utf-8")
