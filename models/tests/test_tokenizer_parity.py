"""The runtime's tokenizers (through the C API) against the pure-Python reference
(models/tokenizer_ref.py) on random and real text, for gpt2 and llama vocabularies; round trips;
and the llama tokenizer on the real LLaMA-2 vocabulary against ids recorded from
llama-tokenizer-js (fixtures/make_llama2_vocab.py)."""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import random
import re
import string
import unicodedata
from pathlib import Path

import pytest

from models import runtime
from models.gguf import GGUFReader
from models.make_tiny import SAMPLE_TEXT
from models.tests.gguf_edit import tokenizer_keys, with_vocabulary
from models.tokenizer_ref import (LLAMA_SPACE, TOKEN_BYTE, TOKEN_CONTROL, TOKEN_NORMAL, TOKEN_UNUSED,
                                  TOKEN_USER_DEFINED, WHITE_SPACE, gpt2_pretokenize, load_from_gguf,
                                  split_units)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
N_RANDOM_TEXTS = 1500
FLAGS = [(False, False), (True, False), (False, True), (True, True)]  # (add_bos, parse_special)

TINY = dict(n_layers=1, d_model=16, cema_ndim=2, n_attn_heads=1, z_dim=8, value_dim=16, ffn_dim=32,
            chunk_size=8, norm_groups=2, vocab_size=1200)

# Tokens added to the generated vocabularies: specials of both kinds, overlapping special strings
# (the longest must win), llama pieces that only a merge through a user-defined intermediate can
# reach, a piece of type "unused" (never merged), pieces of equal score that overlap in runs
# ("...", "zzz", spaces: the leftmost pair must merge first), and byte tokens removed (invalid
# bytes then become the unknown token).
GPT2_ADDED = [("<|user|>", TOKEN_USER_DEFINED), ("<|user|>:", TOKEN_USER_DEFINED), ("<|sep|>", TOKEN_CONTROL),
              ("<|", TOKEN_USER_DEFINED), ("[INST]", TOKEN_CONTROL)]
LLAMA_ADDED = [("<tool>", TOKEN_USER_DEFINED), ("<tool>>", TOKEN_USER_DEFINED), ("</tool>", TOKEN_CONTROL),
               ("[INST]", TOKEN_CONTROL), ("xy", TOKEN_USER_DEFINED), ("xyz", TOKEN_USER_DEFINED),
               ("qz", TOKEN_UNUSED), ("\u2581\u2581", TOKEN_NORMAL), ("..", TOKEN_NORMAL), ("zz", TOKEN_NORMAL)]
LLAMA_ADDED_SCORES = {"xy": 5.0, "xyz": 6.0, "qz": 10.0, "\u2581\u2581": 1.0, "..": 1.0, "zz": 1.0}
LLAMA_REMOVED_BYTES = range(0xF5, 0x100)  # bytes that never occur in well-formed UTF-8


# ----------------------------------------------------------------------------------------------
# Model variants


def _add_tokens(keys: dict, added: list[tuple[str, int]], scores: dict[str, float]) -> dict:
    keys = dict(keys)
    present = set(keys["tokenizer.ggml.tokens"][1]) & {piece for piece, _ in added}
    assert not present, f"the generated vocabulary already has {present}"
    tokens = list(keys["tokenizer.ggml.tokens"][1]) + [piece for piece, _ in added]
    types = list(keys["tokenizer.ggml.token_type"][1]) + [kind for _, kind in added]
    keys["tokenizer.ggml.tokens"] = ("str[]", tokens)
    keys["tokenizer.ggml.token_type"] = ("i32[]", types)
    if "tokenizer.ggml.scores" in keys:
        keys["tokenizer.ggml.scores"] = ("f32[]", list(keys["tokenizer.ggml.scores"][1])
                                         + [scores.get(piece, 0.0) for piece, _ in added])
    return keys


def _remove_byte_tokens(keys: dict, removed) -> dict:
    """Drops the llama byte tokens of `removed` (ids after them shift down; specials come first)."""
    drop = {f"<0x{b:02X}>" for b in removed}
    tokens, types, scores = (keys[k][1] for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                                                  "tokenizer.ggml.scores"))
    keep = [i for i, piece in enumerate(tokens) if not (piece in drop and types[i] == TOKEN_BYTE)]
    keys = dict(keys)
    keys["tokenizer.ggml.tokens"] = ("str[]", [tokens[i] for i in keep])
    keys["tokenizer.ggml.token_type"] = ("i32[]", [types[i] for i in keep])
    keys["tokenizer.ggml.scores"] = ("f32[]", [scores[i] for i in keep])
    return keys


VARIANTS = ["gpt2", "llama", "gpt2_added", "llama_added", "llama_no_prefix"]


@pytest.fixture(scope="module")
def variant_path(model_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer_variants")
    made: dict[str, str] = {}

    def path(name: str) -> str:
        if name not in made:
            kind = kind_of(name)
            base = model_file(**TINY, tokenizer=kind, seed=31 if kind == "gpt2" else 32)
            if name in ("gpt2", "llama"):
                made[name] = base
            else:
                keys = tokenizer_keys(base)
                if name == "gpt2_added":
                    keys = _add_tokens(keys, GPT2_ADDED, {})
                elif name == "llama_added":
                    keys = _add_tokens(_remove_byte_tokens(keys, LLAMA_REMOVED_BYTES), LLAMA_ADDED,
                                       LLAMA_ADDED_SCORES)
                else:
                    keys["tokenizer.ggml.add_space_prefix"] = ("bool", False)
                made[name] = with_vocabulary(base, folder / f"{name}.gguf", keys)
        return made[name]

    return path


@pytest.fixture(scope="module")
def reference_tokenizer(variant_path):
    """reference_tokenizer(variant) -> the reference tokenizer of that vocabulary."""
    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_from_gguf(variant_path(name))
        return loaded[name]

    return get


@pytest.fixture(scope="module")
def pair(variant_path, reference_tokenizer, runtime_library):
    """pair(variant) -> (runtime model, reference tokenizer)."""
    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = runtime.Model(variant_path(name), n_threads=1)
        return loaded[name], reference_tokenizer(name)

    yield get
    for model in loaded.values():
        model.close()


# ----------------------------------------------------------------------------------------------
# Text generators

_SAMPLE_WORDS = sorted(set(re.findall(r"\w+", SAMPLE_TEXT)))
_WHITE = [" ", "  ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u2003", "\u3000", "\x0b", "\x0c", "\x85",
          "\u2028", "\x1c", "\u200b", " \n", "\t "]
_LETTERS = ["é", "ß", "Ω", "дом", "ñ", "اللغة", "हिन्दी", "ไทย", "Ǆ", "ǅ", "ʰ", "ª"]
_CJK = ["中文", "日本語", "한국어", "漢字かな", "カタカナ"]
_EMOJI = ["😀", "👍🏽", "👨\u200d👩\u200d👧", "🇩🇪", "❤️", "🙂🙃"]
_COMBINING = ["e\u0301", "a\u0308", "\u0301", "n\u0303\u0323", "क\u093f", "\u20dd"]
_NUMBERS = ["½", "²", "Ⅻ", "٣٤", "१२", "𝟙", "〇"]
_INVALID = [b"\x80", b"\xbf", b"\xff", b"\xfe", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xe0\x9f\xbf",
            b"\xf0\x80\x80\xaf", b"\xf0\x8f\xbf\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80",
            b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3", b"\xe2",
            b"\x80\x80\x80", b"\xc2"]
_CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'x", "''s", "\u2019s", "'"]


def _pick(rng: random.Random, items):
    return items[rng.randrange(len(items))]


def random_text(rng: random.Random, specials: list[str]) -> bytes:
    """Random bytes built from fragments that exercise every tokenizer rule."""
    if rng.random() < 0.08:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(24)))
    near_specials = specials + [s[:-1] for s in specials if len(s) > 1] + [s[1:] for s in specials]
    out = bytearray()
    if rng.random() < 0.2:
        out += _pick(rng, [" ", "  ", "\n", "\t"]).encode()
    for _ in range(rng.randrange(16)):
        roll = rng.random()
        if roll < 0.25:
            word = _pick(rng, _SAMPLE_WORDS)
            fragment = word.capitalize() if rng.random() < 0.2 else word
        elif roll < 0.32:
            fragment = "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(1, 6)))
        elif roll < 0.38:
            fragment = _pick(rng, _CONTRACTIONS)
        elif roll < 0.45:
            fragment = _pick(rng, ["".join(rng.choice(string.punctuation) for _ in range(rng.randint(1, 4))),
                                   "." * rng.randint(2, 5), "z" * rng.randint(2, 5), "aaa", "!!"])
        elif roll < 0.51:
            fragment = _pick(rng, [str(rng.randrange(10 ** rng.randint(1, 7))), "3.14159", "1,000", "10:30"])
        elif roll < 0.60:
            fragment = "".join(_pick(rng, _WHITE) for _ in range(rng.randint(1, 3)))
        elif roll < 0.65:
            fragment = _pick(rng, _LETTERS)
        elif roll < 0.69:
            fragment = _pick(rng, _CJK)
        elif roll < 0.73:
            fragment = _pick(rng, _EMOJI)
        elif roll < 0.77:
            fragment = _pick(rng, _COMBINING)
        elif roll < 0.80:
            fragment = _pick(rng, _NUMBERS)
        elif roll < 0.87:
            out += _pick(rng, _INVALID)
            continue
        elif roll < 0.89:
            out += b"\x00" * rng.randint(1, 2)
            continue
        elif roll < 0.96:
            fragment = _pick(rng, near_specials)
        else:
            fragment = "\u2581"  # SentencePiece's visible space, as plain text
        out += fragment.encode()
        separator = rng.random()
        if separator < 0.55:
            out += b" "
        elif separator < 0.6:
            out += b"  "
    if rng.random() < 0.15:
        out += _pick(rng, [" ", "  ", "\n", " \n", "\t"]).encode()
    return bytes(out)


def special_strings(tokenizer) -> list[str]:
    return [tokenizer.pieces[i] for i, kind in enumerate(tokenizer.types)
            if kind in (TOKEN_CONTROL, TOKEN_USER_DEFINED)]


def random_texts(tokenizer, seed: int, count: int = N_RANDOM_TEXTS) -> list[bytes]:
    rng = random.Random(seed)
    specials = special_strings(tokenizer) + ["<|endoftext|>", "<s>", "</s>"]
    return [random_text(rng, specials) for _ in range(count)]


def real_documents() -> list[bytes]:
    """A few KB of real text: licence files when the system has them, stdlib documentation."""
    docs = [inspect.getdoc(module) or "" for module in (re, argparse, collections, json, string)]
    docs += [inspect.getdoc(str.split), inspect.getdoc(dict), inspect.getdoc(unicodedata)]
    licences = Path("/usr/share/common-licenses")
    for name in ("GPL-3", "Apache-2.0"):
        if (licences / name).is_file():
            docs.append((licences / name).read_text(encoding="utf-8")[:6000])
    return [d.encode("utf-8") for d in docs if d]


def round_trip_expectation(tokenizer_kind: str, text: bytes) -> bytes:
    """decode(encode(text)): the text itself, except that llama decodes '▁' as a space."""
    return text.replace(LLAMA_SPACE, b" ") if tokenizer_kind == "llama" else text


# ----------------------------------------------------------------------------------------------
# Helpers


def describe(text: bytes) -> str:
    shown = text if len(text) <= 120 else text[:120]
    suffix = "" if len(text) <= 120 else f" ... ({len(text)} bytes)"
    return f"{shown.hex(' ')}{suffix} ({shown!r}{suffix})"


def compare_encodings(model, reference, texts, flags=FLAGS) -> list[str]:
    failures = []
    for text in texts:
        for add_bos, parse_special in flags:
            got = model.tokenize(text, add_bos=add_bos, parse_special=parse_special)
            expected = reference.encode(text, add_bos=add_bos, parse_special=parse_special)
            if got != expected:
                failures.append(f"input {describe(text)} add_bos={add_bos} parse_special={parse_special}:\n"
                                f"  runtime   {got}\n  reference {expected}")
    return failures


def assert_no_failures(failures: list[str], total: int, what: str) -> None:
    if failures:
        shown = "\n".join(failures[:6])
        pytest.fail(f"{len(failures)} of {total} {what} differ; first ones:\n{shown}", pytrace=False)


def kind_of(name: str) -> str:
    return "gpt2" if name.startswith("gpt2") else "llama"


# ----------------------------------------------------------------------------------------------
# The reference on its own: the rules of the specification on hand-checked examples


def units_of(data: bytes) -> list[tuple[bytes, int | None]]:
    return [(u.data, u.codepoint) for u in split_units(data)]


def test_reference_utf8_units():
    assert units_of("aé€😀".encode()) == [(b"a", 0x61), ("é".encode(), 0xE9), ("€".encode(), 0x20AC),
                                          ("😀".encode(), 0x1F600)]
    # Overlongs, surrogates, code points above U+10FFFF, bytes that never occur, truncated
    # sequences and stray continuation bytes: every byte is a unit of its own.
    for bad in (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x8f\xbf\xbf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                b"\xf5\x80\x80\x80", b"\xff", b"\xe2\x82", b"\xf0\x9f\x98", b"\x80\xbf"):
        assert units_of(bad) == [(bytes([b]), None) for b in bad], bad.hex()
    assert units_of(b"\xe2\x82\xac\xe2\x82") == [("€".encode(), 0x20AC), (b"\xe2", None), (b"\x82", None)]
    assert units_of(b"\xe2\x82a") == [(b"\xe2", None), (b"\x82", None), (b"a", 0x61)]
    assert units_of(b"\xed\x9f\xbf\xee\x80\x80") == [("\ud7ff".encode(), 0xD7FF), ("\ue000".encode(), 0xE000)]
    assert units_of("\U0010ffff".encode()) == [("\U0010ffff".encode(), 0x10FFFF)]


def test_reference_gpt2_pretokenizer_examples():
    cases = {
        b"Hello world's  end\n\n": [b"Hello", b" world", b"'s", b" ", b" end", b"\n\n"],
        b"I'm  here   now ": [b"I", b"'m", b" ", b" here", b"  ", b" now", b" "],
        b"it'S x'llx": [b"it", b"'", b"S", b" x", b"'ll", b"x"],
        b"a1b 22 ,,c": [b"a", b"1", b"b", b" 22", b" ,,", b"c"],
        b"a\xffb \xff\xfe! z": [b"a", b"\xff", b"b", b" \xff\xfe!", b" z"],
        b"x\x00\x00y": [b"x", b"\x00\x00", b"y"],
        # Only U+0020 joins the following word; other white space stays apart.
        "\u00a0\u00a0x \u3000y".encode(): ["\u00a0".encode(), "\u00a0".encode(), b"x", b" ", "\u3000".encode(), b"y"],
        "½x² e\u0301".encode(): ["½".encode(), b"x", "²".encode(), b" e", "\u0301".encode()],
        b"\x1c\t\n": [b"\x1c", b"\t\n"],  # U+001C is not White_Space
    }
    for text, expected in cases.items():
        assert gpt2_pretokenize(text) == expected, text


def test_reference_gpt2_pretokenizer_agrees_with_regex_module():
    """On well-formed text the hand-written matcher equals the pattern run by `regex`, with \\s
    spelled as the White_Space set and only characters whose category both agree on."""
    regex = pytest.importorskip("regex")
    space_class = "".join(regex.escape(chr(c)) for c in sorted(WHITE_SPACE))
    pattern = regex.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?\p{{N}}+| ?[^{space_class}\p{{L}}\p{{N}}]+"
                            rf"|[{space_class}]+(?![^{space_class}])|[{space_class}]+")
    pool = list("abxyz'sStdrevml ABC 0129 .,!?-_\t\n\r\x0b\x1c\x85") + [
        "é", "中", "\u0301", "\u00a0", "\u2003", "\u3000", "😀", "٣", "½", "\u2028", "\u200b"]
    rng = random.Random(5)
    for _ in range(3000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 24)))
        assert gpt2_pretokenize(text.encode()) == [m.encode() for m in pattern.findall(text)], repr(text)


def test_reference_special_tokens_and_prefix(reference_tokenizer):
    gpt2 = reference_tokenizer("gpt2_added")
    eos = gpt2.id_of[b"<|endoftext|>"]
    user, user_colon = gpt2.id_of[b"<|user|>"], gpt2.id_of[b"<|user|>:"]
    assert gpt2.encode("<|user|>:<|user|>", parse_special=True) == [user_colon, user]
    assert eos not in gpt2.encode("a<|endoftext|>b")
    assert gpt2.encode("a<|endoftext|>b", parse_special=True) == gpt2.encode("a") + [eos] + gpt2.encode("b")
    assert gpt2.decode(gpt2.encode("x<|endoftext|>", parse_special=True)) == b"x"
    assert gpt2.decode(gpt2.encode("x<|endoftext|>", parse_special=True), render_special=True) == b"x<|endoftext|>"

    llama = reference_tokenizer("llama_added")
    space_a = llama.encode("a")
    assert llama.decode(space_a) == b"a" and llama.pieces[space_a[0]].startswith("\u2581")
    tool = llama.id_of[b"<tool>"]
    # After a special token the text gets no '▁' prefix; at the start it does.
    assert llama.encode("<tool>a", parse_special=True) == [tool, llama.id_of[b"a"]]
    assert llama.encode("<tool>>", parse_special=True) == [llama.id_of[b"<tool>>"]]
    # "xyz" is reachable through the user-defined "xy"; "qz" is unused and never merged.
    assert llama.encode("xyz")[-1] == llama.id_of[b"xyz"]
    assert b"qz" not in [llama.piece_bytes[i] for i in llama.encode("qz")]
    # Bytes without a byte token become the unknown token.
    assert llama.encode(b"\xff")[-1] == llama.unknown


# ----------------------------------------------------------------------------------------------
# Runtime against reference


@pytest.mark.parametrize("name", VARIANTS)
def test_vocabulary_and_pieces(name, pair, variant_path):
    model, reference = pair(name)
    tokens = GGUFReader(variant_path(name))["tokenizer.ggml.tokens"]
    assert model.n_vocab == reference.n_vocab == len(tokens)
    assert [model.piece(i) for i in range(model.n_vocab)] == tokens
    assert model.info()["bos_token"] == (reference.bos if reference.bos is not None else -1)


@pytest.mark.parametrize("name", VARIANTS)
def test_random_strings_match_reference(name, pair):
    model, reference = pair(name)
    texts = random_texts(reference, seed=VARIANTS.index(name))
    failures = compare_encodings(model, reference, texts)
    assert_no_failures(failures, len(texts) * len(FLAGS), "encodings of random strings")


@pytest.mark.parametrize("name", VARIANTS)
def test_real_text_matches_reference(name, pair):
    model, reference = pair(name)
    docs = real_documents()
    assert sum(map(len, docs)) > 8000
    lines = [line for doc in docs for line in doc.splitlines(keepends=True)]
    paragraphs = [p for doc in docs for p in doc.split(b"\n\n")]
    failures = compare_encodings(model, reference, lines + paragraphs)
    # Whole documents with two of the flag combinations: the llama reference is quadratic in the
    # length of the text (no pre-tokenizer splits it).
    doc_flags = [FLAGS[0], FLAGS[-1]]
    failures += compare_encodings(model, reference, docs, doc_flags)
    assert_no_failures(failures, len(lines + paragraphs) * len(FLAGS) + len(docs) * len(doc_flags),
                       "encodings of real text")


# (add_bos, parse_special, render_special): special tokens parsed from the text must be rendered
# to come back; a BOS added in front must not be (it renders as nothing then).
ROUND_TRIP_FLAGS = [(False, False, False), (True, False, False), (False, True, True)]


@pytest.mark.parametrize("name", VARIANTS)
def test_round_trip(name, pair):
    model, reference = pair(name)
    texts = random_texts(reference, seed=100 + VARIANTS.index(name), count=600)
    texts += [line for doc in real_documents() for line in doc.splitlines(keepends=True)]
    if name == "llama_added":  # bytes without a byte token become <unk>: no way back
        texts = [t for t in texts if not any(b in LLAMA_REMOVED_BYTES for b in t)]
    failures = []
    for text in texts:
        expected = round_trip_expectation(kind_of(name), text)
        for add_bos, parse_special, render_special in ROUND_TRIP_FLAGS:
            for label, encode, decode in (
                    ("runtime", model.tokenize, model.detokenize),
                    ("reference", reference.encode, reference.decode)):
                ids = encode(text, add_bos=add_bos, parse_special=parse_special)
                got = decode(ids, render_special=render_special)
                if got != expected:
                    failures.append(f"{label}: input {describe(text)} add_bos={add_bos} parse_special="
                                    f"{parse_special}: ids {ids} decode to {describe(got)}")
    assert_no_failures(failures, len(texts) * len(ROUND_TRIP_FLAGS) * 2, "round trips")


@pytest.mark.parametrize("name", VARIANTS)
def test_decode_of_arbitrary_ids_matches_reference(name, pair):
    """Id sequences an encoder would not produce (byte tokens, specials and unknown anywhere)."""
    model, reference = pair(name)
    rng = random.Random(7 + VARIANTS.index(name))
    special_ids = [i for i, kind in enumerate(reference.types) if kind != TOKEN_NORMAL]
    failures = []
    for _ in range(1500):
        ids = [rng.choice(special_ids) if rng.random() < 0.3 else rng.randrange(reference.n_vocab)
               for _ in range(rng.randrange(12))]
        for render_special in (False, True):
            got = model.detokenize(ids, render_special=render_special)
            expected = reference.decode(ids, render_special=render_special)
            if got != expected:
                failures.append(f"ids {ids} render_special={render_special}: runtime {describe(got)} "
                                f"reference {describe(expected)}")
    assert_no_failures(failures, 3000, "decodings")


# ----------------------------------------------------------------------------------------------
# The real LLaMA-2 vocabulary against llama-tokenizer-js


def test_llama2_vocabulary_matches_llama_tokenizer_js(runtime_library):
    path = FIXTURES / "llama2_vocab.gguf"
    expected = json.loads((FIXTURES / "llama2_expected.json").read_text(encoding="utf-8"))
    cases = expected["cases"]
    assert len(cases) >= 200
    reference = load_from_gguf(path)
    with runtime.Model(path, n_threads=1) as model:
        assert model.n_vocab == 32000
        failures = []
        for text, ids in cases:
            data = text.encode("utf-8")
            for label, got in (("runtime", model.tokenize(data, add_bos=True)),
                               ("reference", reference.encode(data, add_bos=True))):
                if got != ids:
                    failures.append(f"{label}: input {describe(data)}:\n  got                {got}\n"
                                    f"  llama-tokenizer-js {ids}")
            decoded = model.detokenize(ids)
            if decoded != round_trip_expectation("llama", data):
                failures.append(f"runtime decode of {ids}: {describe(decoded)}")
        assert_no_failures(failures, 3 * len(cases), "LLaMA-2 tokenizations")
