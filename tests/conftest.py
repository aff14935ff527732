"""Shared test setup: quiet TensorFlow, a private model-zoo cache, no network."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import pytest  # noqa: E402

import tlutils  # noqa: E402,F401  (imports TensorFlow quietly)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Every test gets the session's private zoo cache and never touches the network."""
    cache = tmp_path_factory.getbasetemp() / "tlutils-cache"
    monkeypatch.setenv("TLUTILS_CACHE_DIR", str(cache))
    monkeypatch.setenv("TLUTILS_OFFLINE", "1")
    yield


SHARED_MNIST = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                            "data", "mnist"))
