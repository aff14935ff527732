import pytest

import tlutils
from tlutils import io


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "sub" / "card.json"
    io.atomic_write_text(target, "first")
    io.atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["card.json"]


def test_atomic_path_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "data.bin"
    io.atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half-writ")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_io_bad_input(tmp_path):
    with pytest.raises(ValueError, match="data"):
        io.atomic_write_bytes(tmp_path / "x", "not bytes")
    with pytest.raises(ValueError, match="text"):
        io.atomic_write_text(tmp_path / "x", b"bytes")


def test_sha256_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert io.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_config(monkeypatch, tmp_path):
    monkeypatch.setenv("TLUTILS_CACHE_DIR", str(tmp_path / "c"))
    assert tlutils.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("TLUTILS_DATA_DIR", raising=False)
    assert tlutils.data_dir() is None
    monkeypatch.setenv("TLUTILS_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="TLUTILS_DATA_DIR"):
        tlutils.data_dir()
    assert tlutils.in_colab() is False
    with pytest.raises(ValueError, match="seed"):
        tlutils.setup(-1)


def test_tensorflow_log_settings_are_set_before_tensorflow_loads():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    code = ("import tlutils, os; "
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], os.environ['TF_ENABLE_ONEDNN_OPTS'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["2", "0"]
    assert "cuda" not in out.stderr.lower() and "E0000" not in out.stderr
