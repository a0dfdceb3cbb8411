"""Pure-Python reference of the runtime's two tokenizers, "gpt2" (byte-level BPE) and "llama"
(SentencePiece BPE with byte fallback), written for clarity rather than speed.

Text is handled as bytes throughout. It is split into units: a well-formed UTF-8 sequence is one
unit carrying its code point; any byte that does not start a well-formed sequence is a unit of
its own with no code point (it counts as neither letter, number nor space).

Usage:
    tokenizer = load_from_gguf("model.gguf")
    ids = tokenizer.encode("Hello world", add_bos=True)
    assert tokenizer.decode(ids) == b"Hello world"
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence

TOKEN_NORMAL = 1
TOKEN_UNKNOWN = 2
TOKEN_CONTROL = 3
TOKEN_USER_DEFINED = 4
TOKEN_UNUSED = 5
TOKEN_BYTE = 6

LLAMA_SPACE = "\u2581".encode("utf-8")  # '▁', SentencePiece's visible space

# Unicode White_Space property (what \s means in the gpt2 pre-tokenizer).
WHITE_SPACE = frozenset([*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                         0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


# ----------------------------------------------------------------------------------------------
# UTF-8 units


@dataclass(frozen=True)
class Unit:
    data: bytes            # the unit's bytes (one byte for an invalid unit)
    codepoint: int | None  # None for a byte that does not start a well-formed sequence


# Well-formed UTF-8 (Unicode Table 3-7): for each lead byte range, the allowed range of the
# second byte and the number of continuation bytes. Later continuation bytes are 80..BF.
_SEQUENCES = (
    (0xC2, 0xDF, 0x80, 0xBF, 1),
    (0xE0, 0xE0, 0xA0, 0xBF, 2),  # no overlongs
    (0xE1, 0xEC, 0x80, 0xBF, 2),
    (0xED, 0xED, 0x80, 0x9F, 2),  # no surrogates
    (0xEE, 0xEF, 0x80, 0xBF, 2),
    (0xF0, 0xF0, 0x90, 0xBF, 3),  # no overlongs
    (0xF1, 0xF3, 0x80, 0xBF, 3),
    (0xF4, 0xF4, 0x80, 0x8F, 3),  # nothing above U+10FFFF
)


def well_formed_length(data: bytes, pos: int) -> int:
    """Length of the well-formed UTF-8 sequence starting at data[pos], or 0 if there is none."""
    lead = data[pos]
    if lead < 0x80:
        return 1
    for first, last, second_min, second_max, n_continuation in _SEQUENCES:
        if not first <= lead <= last:
            continue
        if pos + n_continuation >= len(data):
            return 0
        if not second_min <= data[pos + 1] <= second_max:
            return 0
        if any(not 0x80 <= data[pos + k] <= 0xBF for k in range(2, n_continuation + 1)):
            return 0
        return n_continuation + 1
    return 0


def split_units(data: bytes) -> list[Unit]:
    units = []
    pos = 0
    while pos < len(data):
        length = well_formed_length(data, pos)
        if length == 0:
            units.append(Unit(data[pos:pos + 1], None))
            pos += 1
        else:
            chunk = data[pos:pos + length]
            units.append(Unit(chunk, ord(chunk.decode("utf-8"))))
            pos += length
    return units


def is_letter(unit: Unit) -> bool:
    return unit.codepoint is not None and unicodedata.category(chr(unit.codepoint)).startswith("L")


def is_number(unit: Unit) -> bool:
    return unit.codepoint is not None and unicodedata.category(chr(unit.codepoint)).startswith("N")


def is_space(unit: Unit) -> bool:
    return unit.codepoint is not None and unit.codepoint in WHITE_SPACE


def is_other(unit: Unit) -> bool:
    return not (is_letter(unit) or is_number(unit) or is_space(unit))


# ----------------------------------------------------------------------------------------------
# gpt2 pre-tokenizer:
#   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# matched by hand, alternative by alternative, with leftmost-first semantics.

_CONTRACTIONS = (b"s", b"t", b"re", b"ve", b"m", b"ll", b"d")


def _run_end(units: list[Unit], start: int, predicate) -> int:
    end = start
    while end < len(units) and predicate(units[end]):
        end += 1
    return end


def _match_at(units: list[Unit], i: int) -> int:
    """End index of the pre-token that starts at units[i]."""
    n = len(units)
    if units[i].data == b"'":
        for suffix in _CONTRACTIONS:
            end = i + 1 + len(suffix)
            if end <= n and b"".join(u.data for u in units[i + 1:end]) == suffix:
                return end
    for predicate in (is_letter, is_number, is_other):
        # ' ?X+': the optional space is greedy, so try with it first, then without.
        if units[i].data == b" " and i + 1 < n and predicate(units[i + 1]):
            return _run_end(units, i + 1, predicate)
        if predicate(units[i]):
            return _run_end(units, i, predicate)
    # units[i] is white space here (every unit is a letter, a number, other or space).
    end = _run_end(units, i, is_space)
    if end == n:                 # \s+(?!\S) at the end of the text
        return end
    if end - i >= 2:             # \s+(?!\S) backs off one so the last space joins the next word
        return end - 1
    return end                   # \s+


def gpt2_pretokenize(data: bytes) -> list[bytes]:
    units = split_units(data)
    pieces = []
    i = 0
    while i < len(units):
        end = _match_at(units, i)
        pieces.append(b"".join(u.data for u in units[i:end]))
        i = end
    return pieces


def gpt2_byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> symbol table: printable bytes map to themselves, the other 68 bytes to
    U+0100, U+0101, ... in increasing byte order."""
    table = {}
    extra = 0
    for byte in range(256):
        if 33 <= byte <= 126 or 161 <= byte <= 172 or 174 <= byte <= 255:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


# ----------------------------------------------------------------------------------------------
# Tokenizers


class TokenizerError(ValueError):
    pass


class Tokenizer:
    """Common part: vocabulary, special tokens, BOS."""

    def __init__(self, pieces: list[str], types: list[int], bos: int | None):
        self.pieces = pieces
        self.types = types
        self.bos = bos
        self.piece_bytes = [p.encode("utf-8") for p in pieces]
        self.id_of: dict[bytes, int] = {}
        for token, piece in enumerate(self.piece_bytes):
            self.id_of.setdefault(piece, token)
        self.specials = [(piece, token) for token, piece in enumerate(self.piece_bytes)
                         if types[token] in (TOKEN_CONTROL, TOKEN_USER_DEFINED) and piece]

    @property
    def n_vocab(self) -> int:
        return len(self.pieces)

    def encode(self, text: bytes | str, add_bos: bool = False, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        ids = [self.bos] if add_bos and self.bos is not None else []
        segments = self._split_special(data) if parse_special else [data]
        at_start = True
        for segment in segments:
            if isinstance(segment, int):
                ids.append(segment)
            elif segment:
                ids += self._encode_segment(segment, at_start)
            at_start = False
        return ids

    def _split_special(self, data: bytes) -> list[bytes | int]:
        """Text pieces and special token ids, in order; the longest special string wins."""
        out: list[bytes | int] = []
        plain_start = 0
        pos = 0
        while pos < len(data):
            best = None
            for piece, token in self.specials:
                if data.startswith(piece, pos) and (best is None or len(piece) > len(best[0])):
                    best = (piece, token)
            if best is None:
                pos += 1
                continue
            out.append(data[plain_start:pos])
            out.append(best[1])
            pos += len(best[0])
            plain_start = pos
        out.append(data[plain_start:])
        return out

    def _encode_segment(self, data: bytes, at_text_start: bool) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int], render_special: bool = False) -> bytes:
        raise NotImplementedError

    def _check_id(self, token: int) -> None:
        if not 0 <= token < self.n_vocab:
            raise TokenizerError(f"token {token} out of range [0, {self.n_vocab})")


class Gpt2Tokenizer(Tokenizer):
    def __init__(self, pieces, types, bos, merges: list[str]):
        super().__init__(pieces, types, bos)
        self.byte_to_symbol = gpt2_byte_to_unicode()
        self.symbol_to_byte = {s: b for b, s in self.byte_to_symbol.items()}
        for symbol in self.byte_to_symbol.values():
            if symbol.encode("utf-8") not in self.id_of:
                raise TokenizerError(f"gpt2 vocabulary lacks the byte symbol {symbol!r}")
        self.merge_rank: dict[tuple[str, str], int] = {}
        for rank, merge in enumerate(merges):
            split = merge.find(" ", 1)
            if split < 0:
                raise TokenizerError(f"merge {rank} {merge!r} has no separating space")
            self.merge_rank.setdefault((merge[:split], merge[split + 1:]), rank)

    def bpe(self, symbols: list[str]) -> list[str]:
        symbols = list(symbols)
        while True:
            best_rank, best_at = None, None
            for at in range(len(symbols) - 1):
                rank = self.merge_rank.get((symbols[at], symbols[at + 1]))
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best_at = rank, at
            if best_at is None:
                return symbols
            symbols[best_at:best_at + 2] = [symbols[best_at] + symbols[best_at + 1]]

    def _encode_segment(self, data: bytes, at_text_start: bool) -> list[int]:
        ids = []
        for word in gpt2_pretokenize(data):
            for symbol in self.bpe([self.byte_to_symbol[b] for b in word]):
                token = self.id_of.get(symbol.encode("utf-8"))
                if token is not None:
                    ids.append(token)
                else:  # a merge result missing from the vocabulary: fall back to its bytes
                    ids += [self.id_of[c.encode("utf-8")] for c in symbol]
        return ids

    def decode(self, ids: Sequence[int], render_special: bool = False) -> bytes:
        out = bytearray()
        for token in ids:
            self._check_id(token)
            if self.types[token] == TOKEN_CONTROL:
                if render_special:
                    out += self.piece_bytes[token]
                continue
            for char in self.pieces[token]:
                byte = self.symbol_to_byte.get(char)
                out += bytes([byte]) if byte is not None else char.encode("utf-8")
        return bytes(out)


class LlamaTokenizer(Tokenizer):
    def __init__(self, pieces, types, bos, scores: list[float], unknown: int | None, add_space_prefix: bool):
        super().__init__(pieces, types, bos)
        if len(scores) != len(pieces):
            raise TokenizerError(f"{len(scores)} scores for {len(pieces)} tokens")
        self.scores = scores
        self.unknown = unknown
        self.add_space_prefix = add_space_prefix
        self.byte_token: dict[int, int] = {}
        for byte in range(256):
            token = self.id_of.get(f"<0x{byte:02X}>".encode())
            if token is not None and types[token] == TOKEN_BYTE:
                self.byte_token[byte] = token

    def _mergeable_score(self, piece: bytes) -> float | None:
        token = self.id_of.get(piece)
        if token is None or self.types[token] not in (TOKEN_NORMAL, TOKEN_USER_DEFINED):
            return None
        return self.scores[token]

    def bpe(self, units: list[bytes]) -> list[bytes]:
        units = list(units)
        # pair_keys[i] ranks merging units[i] with units[i + 1]: (mergeable, score).
        pair_keys = [self._pair_key(units[i], units[i + 1]) for i in range(len(units) - 1)]
        while pair_keys:
            best_at = max(range(len(pair_keys)), key=pair_keys.__getitem__)  # max() keeps the leftmost
            if not pair_keys[best_at][0]:
                break
            units[best_at:best_at + 2] = [units[best_at] + units[best_at + 1]]
            del pair_keys[best_at]
            for at in (best_at - 1, best_at):  # the pairs that involve the merged unit
                if 0 <= at < len(pair_keys):
                    pair_keys[at] = self._pair_key(units[at], units[at + 1])
        return units

    def _pair_key(self, left: bytes, right: bytes) -> tuple[bool, float]:
        score = self._mergeable_score(left + right)
        return (False, 0.0) if score is None else (True, score)

    def _encode_segment(self, data: bytes, at_text_start: bool) -> list[int]:
        data = data.replace(b" ", LLAMA_SPACE)
        if self.add_space_prefix and at_text_start:
            data = LLAMA_SPACE + data
        ids = []
        for unit in self.bpe([u.data for u in split_units(data)]):
            token = self.id_of.get(unit)
            if token is not None:
                ids.append(token)
                continue
            for byte in unit:
                token = self.byte_token.get(byte, self.unknown)
                if token is not None:
                    ids.append(token)
        return ids

    def token_bytes(self, token: int, render_special: bool) -> bytes:
        self._check_id(token)
        kind = self.types[token]
        if kind == TOKEN_CONTROL:
            return self.piece_bytes[token] if render_special else b""
        if kind == TOKEN_BYTE:
            return bytes([int(self.pieces[token][3:5], 16)])
        return self.piece_bytes[token].replace(LLAMA_SPACE, b" ")

    def decode(self, ids: Sequence[int], render_special: bool = False) -> bytes:
        out = bytearray()
        first = True
        for token in ids:
            piece = self.token_bytes(token, render_special)
            # The space the encoder put in front of the text comes back as the leading space of
            # the first token that renders anything (a BOS before it renders as nothing): drop
            # it so that decode(encode(text)) == text.
            if first and piece:
                if self.add_space_prefix and piece.startswith(b" "):
                    piece = piece[1:]
                first = False
            out += piece
        return bytes(out)


# ----------------------------------------------------------------------------------------------
# Loading


def _reader(reader_or_path: Any):
    if isinstance(reader_or_path, (str, os.PathLike)):
        from models.gguf import GGUFReader
        return GGUFReader(reader_or_path)
    return reader_or_path


def load_from_gguf(reader_or_path: Any) -> Tokenizer:
    """The tokenizer of a GGUF model file (a path or an object with .get(key, default))."""
    reader = _reader(reader_or_path)
    model = reader.get("tokenizer.ggml.model")
    pieces = reader.get("tokenizer.ggml.tokens")
    if pieces is None:
        raise TokenizerError("missing tokenizer.ggml.tokens")
    pieces = list(pieces)
    types = list(reader.get("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(pieces))
    if len(types) != len(pieces):
        raise TokenizerError(f"{len(types)} token types for {len(pieces)} tokens")
    bos = reader.get("tokenizer.ggml.bos_token_id")
    if model == "gpt2":
        return Gpt2Tokenizer(pieces, types, bos, list(reader.get("tokenizer.ggml.merges") or []))
    if model == "llama":
        scores = reader.get("tokenizer.ggml.scores")
        if scores is None:
            raise TokenizerError("missing tokenizer.ggml.scores")
        return LlamaTokenizer(pieces, types, bos, list(scores), reader.get("tokenizer.ggml.unknown_token_id"),
                              bool(reader.get("tokenizer.ggml.add_space_prefix", True)))
    raise TokenizerError(f"unknown tokenizer.ggml.model {model!r}")
