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


def _only(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    import os

    target = tmp_path / "card.json"
    io.atomic_write_text(target, "old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        io.atomic_write_text(target, "new " * 1000)
    assert target.read_text() == "old" and _only(tmp_path) == ["card.json"]


def test_a_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    import os

    target = tmp_path / "w.weights.h5"

    def refuse(src, dst):
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        with io.atomic_path(target, suffix=".weights.h5") as tmp:
            assert tmp.name.endswith(".weights.h5")
            tmp.write_bytes(b"weights")
    assert _only(tmp_path) == []


def test_an_interrupt_mid_write_leaves_nothing(tmp_path):
    target = tmp_path / "data.bin"
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert _only(tmp_path) == []


def test_a_directory_in_the_way_is_not_replaced(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        io.atomic_write_bytes(tmp_path / "taken", b"x")
    assert _only(tmp_path) == ["taken"] and (tmp_path / "taken").is_dir()


def test_atomic_path_bad_input(tmp_path):
    with pytest.raises(ValueError, match="path"):
        with io.atomic_path(42):
            pass
    with pytest.raises(ValueError, match="suffix"):
        with io.atomic_path(tmp_path / "x", suffix=3):
            pass
    assert _only(tmp_path) == []
