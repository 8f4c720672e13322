"""Shared fixtures: paths to optional shared data, tiny models built offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# Nothing may reach a model hub at test time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# One math thread per process (and per child, which inherits it): the tiny models gain nothing from more, and the
# suite runs several test processes on few cores (pytest-xdist), where oversubscribed thread pools ran 8x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long end-to-end tests (marked ``slow``) first, in their own order: under pytest-xdist they start at once,
    beside the many short tests, instead of forming a tail that one process works through alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` when present; tests that need it skip elsewhere."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama folder with a locally trained tokenizer."""
    from tests.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(scope="session")
def tui_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deterministic three-run store (tests/tui_store.py), built once per test process."""
    from tests.tui_store import build_store

    return build_store(tmp_path_factory.mktemp("tui-store") / "store").root


@pytest.fixture
def tui_store(tmp_path: Path, tui_store_template: Path) -> Any:
    """A fresh copy of the three-run store the TUI tests share: each test may change its own."""
    from tests.tui_store import copy_store

    return copy_store(tui_store_template, tmp_path / "store")


@pytest.fixture
def toy_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy job kind (tests/toy_kind.py) registered as a plugin, in this process and every kdtui it starts."""
    monkeypatch.setenv("KDTUI_JOB_KINDS", "tests.toy_kind")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
