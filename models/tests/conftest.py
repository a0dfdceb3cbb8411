"""Shared fixtures: random model files (made once per session) and the runtime library."""

from __future__ import annotations

import pytest

from models import runtime
from models.make_tiny import make_random_model
from models.reference import ReferenceModel


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """make(**config) -> path of a random model with that config (written once per session)."""
    folder = tmp_path_factory.mktemp("models")
    made: dict[tuple, str] = {}

    def make(**config) -> str:
        key = tuple(sorted(config.items()))
        if key not in made:
            made[key] = make_random_model(folder / f"model{len(made)}.gguf", **config)
        return made[key]

    return make


@pytest.fixture(scope="session")
def reference_model(model_file):
    """load(**config) -> ReferenceModel of that config (cached)."""
    loaded: dict[str, ReferenceModel] = {}

    def load(**config) -> ReferenceModel:
        path = model_file(**config)
        if path not in loaded:
            loaded[path] = ReferenceModel(path)
        return loaded[path]

    return load


@pytest.fixture(scope="session")
def runtime_library():
    """The C runtime; its absence fails the tests that need it (it is part of the product)."""
    try:
        return runtime.load_library()
    except OSError as err:
        pytest.fail(f"cannot load the MEGALODON runtime library: {err}", pytrace=False)


@pytest.fixture(scope="session")
def runtime_model(runtime_library, model_file):
    """load(**config) -> runtime.Model of that config (cached)."""
    loaded: dict[str, runtime.Model] = {}

    def load(**config) -> runtime.Model:
        path = model_file(**config)
        if path not in loaded:
            loaded[path] = runtime.Model(path, n_threads=2)
        return loaded[path]

    yield load
    for model in loaded.values():
        model.close()
