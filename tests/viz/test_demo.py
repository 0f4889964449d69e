"""Where the notebooks find their data: explicit path, ``TGKIT_DATASETS``, the checkout."""

from __future__ import annotations

import pytest

from tgkit.errors import TgkitError
from tgkit.viz import demo


def test_datasets_root_order(tmp_path, monkeypatch):
    monkeypatch.delenv(demo.DATASETS_ENV, raising=False)
    assert demo.checkout_root() is not None  # the tests run from a checkout
    assert demo.datasets_root() == demo.checkout_root() / "datasets"
    assert demo.data_path(True).name == demo.TINY_NAME
    monkeypatch.setenv(demo.DATASETS_ENV, str(tmp_path))
    assert demo.datasets_root() == tmp_path
    with pytest.raises(TgkitError, match="dataset missing"):
        demo.data_path(True)
    assert demo.datasets_root(tmp_path / "..") == tmp_path / ".."


def test_no_checkout_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(demo.DATASETS_ENV, raising=False)
    monkeypatch.setattr(demo, "checkout_root", lambda: None)
    with pytest.raises(TgkitError, match="TGKIT_DATASETS"):
        demo.datasets_root()
    with pytest.raises(TgkitError, match="no such datasets directory"):
        demo.datasets_root(tmp_path / "nope")
