"""Mutation fuzzing of the runtime's model (GGUF) and state file parsers.

    python3 -m models.tests.fuzz_loaders --model tiny.gguf --state tiny.state --iterations 300

Each iteration writes a mutated copy of the model (bytes flipped, cut, spliced, inserted,
deleted, or a length-like integer planted in the header) and loads it, then the same for the
state file against the intact model. What loads is also used (tokenize, eval), so a file the
parser wrongly accepts still has to compute without crashing. Prints a JSON summary of the
statuses. Exit status 0 only if every call returned; a crash ends the process with a signal,
which the caller sees as a failure. Run it in a subprocess for that reason.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import struct
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models import runtime  # noqa: E402

# Integers that make length and count fields interesting.
EDGE_VALUES = [0, 1, 2, 3, 4, 5, 8, 31, 32, 33, 255, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               1 << 32, (1 << 56) + 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


def mutate(data: bytes, rng: random.Random, hot_end: int) -> bytes:
    """One random mutation; positions fall in [0, hot_end) (the parsed header) four times in five."""
    def position(limit: int) -> int:
        end = hot_end if rng.random() < 0.8 else limit
        return rng.randrange(max(1, min(end, limit)))

    out = bytearray(data)
    kind = rng.choice(["flip", "flip", "integer", "integer", "truncate", "splice", "insert", "delete"])
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            at = position(len(out))
            out[at] ^= 1 << rng.randrange(8)
    elif kind == "integer":
        at = position(len(out))
        value = rng.choice(EDGE_VALUES + [len(data), len(data) - at, rng.getrandbits(64)])
        packed = struct.pack("<Q", value & ((1 << 64) - 1))[:rng.choice([4, 8])]
        out[at:at + len(packed)] = packed
    elif kind == "truncate":
        del out[position(len(out)):]
    elif kind == "splice":
        start = rng.randrange(len(data))
        chunk = data[start:start + rng.randint(1, 64)]
        at = position(len(out))
        out[at:at + len(chunk)] = chunk
    elif kind == "insert":
        at = position(len(out))
        out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    else:
        at = position(len(out))
        del out[at:at + rng.randint(1, 16)]
    if bytes(out) == data:  # make sure something changed
        out[rng.randrange(len(out))] ^= 0xFF
    return bytes(out)


def exercise(model: runtime.Model, state: runtime.State | None = None) -> None:
    """Uses a model (and state) that loaded: tokenizing, decoding and one evaluation."""
    tokens = model.tokenize(b"Hello world, it's 42 \xff", add_bos=True, parse_special=True)
    model.detokenize(tokens, render_special=True)
    state = state or model.new_state()
    model.eval(state, [t % model.n_vocab for t in tokens[:3]] or [0])


def fuzz_models(model_path: Path, hot_end: int, iterations: int, rng: random.Random, work: Path) -> collections.Counter:
    data = model_path.read_bytes()
    statuses: collections.Counter = collections.Counter()
    target = work / "mutated.gguf"
    for i in range(iterations):
        target.write_bytes(mutate(data, rng, hot_end))
        try:
            with runtime.Model(target, n_threads=1, use_mmap=i % 2 == 0) as model:
                exercise(model)
            statuses["MGL_OK"] += 1
        except runtime.MegalodonError as err:
            statuses[err.status_name] += 1
    return statuses


def fuzz_states(model_path: Path, state_path: Path, iterations: int, rng: random.Random,
                work: Path) -> collections.Counter:
    data = state_path.read_bytes()
    statuses: collections.Counter = collections.Counter()
    target = work / "mutated.state"
    with runtime.Model(model_path, n_threads=1) as model:
        for _ in range(iterations):
            target.write_bytes(mutate(data, rng, len(data)))
            try:
                state = runtime.State.load(model, target)
                exercise(model, state)
                state.close()
                statuses["MGL_OK"] += 1
            except runtime.MegalodonError as err:
                statuses[err.status_name] += 1
    return statuses


def data_start(path: Path) -> int:
    from models.gguf import GGUFReader
    return min(t.offset for t in GGUFReader(path).tensors.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a valid model file")
    parser.add_argument("--state", type=Path, required=True, help="a valid state file of that model")
    parser.add_argument("--iterations", type=int, default=300, help="mutations of each file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="mgl-fuzz-") as folder:
        work = Path(folder)
        models = fuzz_models(args.model, data_start(args.model), args.iterations, rng, work)
        states = fuzz_states(args.model, args.state, args.iterations, rng, work)
    print(json.dumps({"model": dict(models), "state": dict(states)}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
