"""The untrusted half of grading: run a student notebook in a bubblewrap sandbox, hand back data.

``grade.py`` (the grader) starts one sandbox per submission with :class:`Sandbox`. Inside, this
same file runs as a script (``python -I sandbox.py``): it sets its resource limits, executes the
notebook's code cells in an IPython shell (a cell that raises is recorded and the next one runs,
as in ``otter run``), exports the *answers* the tests name, then serves calls to the student's
functions until the grader closes the pipe. Everything crosses the boundary in the wire format
below (JSON plus ``.npy`` and ``.keras`` blobs, never pickle); the grader decodes it with
:func:`decode`, which builds only plain Python, NumPy, pandas, TensorFlow and Keras objects.

What the sandbox sees: the whole file system read-only (so the Python environment works), minus
the folders the grader masks (the autograder zip, the submissions, the results, the grader's
own scratch, the assignment masters); a private writable scratch folder as ``/tmp`` (its
``HOME``, working folder and model-zoo copy); no network; its own PID namespace (every process
it starts dies with it); no capabilities and no further user namespaces; limits on address
space, CPU time, file size and process count (as root, whom RLIMIT_NPROC never binds, a pids
cgroup where one can be made, and a watchdog). Nothing the sandbox writes outlives it.

The runner trusts nothing it receives either, but it need not be secure: student code shares
its process and can rewrite it. The security boundary is :func:`decode` on the grader's side.
"""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

RUNNER = Path(__file__).resolve()
INSIDE_TMP = "/tmp"                 # the scratch folder, as the sandbox sees it
INSIDE_WORK = "/tmp/work"           # the notebook's working folder
INSIDE_ZOO = "/tmp/zoo"             # TLUTILS_CACHE_DIR: a private copy of the model zoo

MAX_MESSAGE = 1 << 30               # bytes: one message from the sandbox, blobs included
MAX_HEADER = 64 << 20               # bytes: its JSON part
MAX_DEPTH = 32
MAX_ITEMS = 2_000_000
#: Modules a test may receive by name (``np``, ``tf``, ``models``...): the grader imports its
#: own copy; the student's module object never crosses.
ALLOWED_MODULES = ("numpy", "pandas", "tensorflow", "keras", "tlutils", "sklearn", "scipy",
                   "math", "statistics", "random", "itertools", "functools", "collections")


@dataclass(frozen=True)
class Limits:
    """Per-submission resource limits (the defaults suit the book's assignments)."""

    memory: int = 4 << 30           # bytes of address space per process (RLIMIT_AS)
    cpu: int = 1200                 # CPU seconds per process (RLIMIT_CPU)
    file_size: int = 1 << 30        # bytes per file written (RLIMIT_FSIZE)
    processes: int = 512            # processes and threads (RLIMIT_NPROC, or a pids cgroup)

    def __post_init__(self) -> None:
        for field in ("memory", "cpu", "file_size", "processes"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"limits.{field} must be a positive integer, got {value!r}")


class SandboxError(RuntimeError):
    """The sandbox broke the protocol, died or ran out of time."""


class SandboxTimeout(SandboxError):
    """The sandbox ran past its deadline (it has been killed)."""


class Unsupported(TypeError):
    """A value has no representation in the wire format."""


# ---------------------------------------------------------------------------------------------
# Wire format: a message is a JSON header and binary blobs, framed by lengths.
# ---------------------------------------------------------------------------------------------

def pack(header: dict, blobs: dict[str, bytes]) -> bytes:
    names = list(blobs)
    head = json.dumps({"h": header, "blobs": names}).encode()
    parts = [struct.pack("<Q", len(head)), head]
    for name in names:
        parts += [struct.pack("<Q", len(blobs[name])), blobs[name]]
    body = b"".join(parts)
    return struct.pack("<Q", len(body)) + body


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SandboxTimeout("no answer before the deadline")
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise SandboxError("the sandbox closed its channel (it exited or was killed)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def unpack_from(fd: int, deadline: float | None = None) -> tuple[dict, dict[str, bytes]]:
    """Read one message; every length is checked before anything is allocated."""
    (size,) = struct.unpack("<Q", _read_exact(fd, 8, deadline))
    if size > MAX_MESSAGE:
        raise SandboxError(f"a message of {size} bytes is over the {MAX_MESSAGE} limit")
    body = memoryview(_read_exact(fd, size, deadline))
    (hlen,) = struct.unpack("<Q", body[:8])
    if hlen > min(MAX_HEADER, size - 8):
        raise SandboxError("malformed message (header length)")
    outer = json.loads(bytes(body[8:8 + hlen]))
    if not isinstance(outer, dict) or not isinstance(outer.get("blobs"), list):
        raise SandboxError("malformed message (header)")
    pos, blobs = 8 + hlen, {}
    for name in outer["blobs"]:
        if not isinstance(name, str) or pos + 8 > size:
            raise SandboxError("malformed message (blob table)")
        (blen,) = struct.unpack("<Q", body[pos:pos + 8])
        pos += 8
        if pos + blen > size:
            raise SandboxError("malformed message (blob length)")
        blobs[name] = bytes(body[pos:pos + blen])
        pos += blen
    if not isinstance(outer["h"], dict):
        raise SandboxError("malformed message (header is not an object)")
    return outer["h"], blobs


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# ---------------------------------------------------------------------------------------------
# Encoding (both sides) and decoding (the grader's security boundary)
# ---------------------------------------------------------------------------------------------

def _keras_model_types():
    keras = sys.modules.get("keras")
    return (keras.Model,) if keras is not None else ()


def _is_tensor(value) -> bool:
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, (tf.Tensor, tf.Variable)) and hasattr(value,
                                                                                     "numpy")


class Encoder:
    """Turns values into the wire format; ``functions=True`` lets top-level functions through
    as references (the runner's answers), otherwise a function is :class:`Unsupported`."""

    def __init__(self, blobs: dict[str, bytes], scratch: str | None = None) -> None:
        self.blobs = blobs
        self.scratch = scratch
        self.items = 0

    def _blob(self, data: bytes) -> str:
        key = f"b{len(self.blobs)}"
        self.blobs[key] = data
        return key

    def _array(self, arr) -> str:
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return self._blob(buf.getvalue())

    def encode(self, value, depth: int = 0):
        import numpy as np

        self.items += 1
        if depth > MAX_DEPTH or self.items > MAX_ITEMS:
            raise Unsupported("value too deeply nested or too large")
        if value is None or isinstance(value, (bool, str)):
            return value if type(value) in (bool, str, type(None)) else str.__str__(value)
        if isinstance(value, int) and not isinstance(value, np.integer):
            return {"__int__": str(int(value))}
        if isinstance(value, float):
            return {"__float__": repr(float(value))}
        if isinstance(value, complex):
            return {"__complex__": [repr(value.real), repr(value.imag)]}
        if isinstance(value, np.generic):
            arr = np.asarray(value)
            if arr.dtype.hasobject:
                raise Unsupported(f"NumPy scalar of dtype {arr.dtype}")
            return {"__npscalar__": self._array(arr)}
        if isinstance(value, np.ndarray):
            arr = np.asarray(value)
            if arr.dtype.hasobject:
                return {"__objarray__": [self.encode(v, depth + 1) for v in arr.ravel()],
                        "shape": list(arr.shape)}
            return {"__ndarray__": self._array(np.ascontiguousarray(arr))}
        if isinstance(value, (list, tuple, set, frozenset)):
            tag = {list: "__list__", tuple: "__tuple__", set: "__set__",
                   frozenset: "__frozenset__"}[next(t for t in (list, tuple, set, frozenset)
                                                    if isinstance(value, t))]
            return {tag: [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, dict):
            return {"__dict__": [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                                 for k, v in value.items()]}
        if _is_tensor(value):
            tf = sys.modules["tensorflow"]
            return {"__tensor__": self._array(np.asarray(value.numpy())),
                    "variable": isinstance(value, tf.Variable)}
        if _keras_model_types() and isinstance(value, _keras_model_types()):
            with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
                path = os.path.join(tmp, "model.keras")
                value.save(path)
                with open(path, "rb") as fh:
                    return {"__keras__": self._blob(fh.read())}
        pd = sys.modules.get("pandas")
        if pd is not None:
            if isinstance(value, pd.DataFrame):
                return {"__dataframe__": {
                    "columns": self.encode(list(value.columns), depth + 1),
                    "index": self.encode(value.index, depth + 1),
                    "data": [self.encode(value.iloc[:, i].to_numpy(), depth + 1)
                             for i in range(value.shape[1])]}}
            if isinstance(value, pd.Series):
                return {"__series__": {"data": self.encode(value.to_numpy(), depth + 1),
                                       "index": self.encode(value.index, depth + 1),
                                       "name": self.encode(value.name, depth + 1)}}
            if isinstance(value, pd.Index) and not isinstance(value, pd.MultiIndex):
                return {"__index__": {"data": self.encode(value.to_numpy(), depth + 1),
                                      "name": self.encode(value.name, depth + 1)}}
        raise Unsupported(f"values of type {type(value).__module__}.{type(value).__qualname__}"
                          " cannot be graded")


class Decoder:
    """Builds objects from the wire format. Everything is checked; nothing is unpickled or
    imported beyond :data:`ALLOWED_MODULES`; Keras models load in safe mode after their
    configuration has been checked for foreign code."""

    def __init__(self, blobs: dict[str, bytes], scratch: str) -> None:
        self.blobs = blobs
        self.scratch = scratch
        self.items = 0

    def _array(self, key):
        import numpy as np

        if not isinstance(key, str) or key not in self.blobs:
            raise SandboxError("reference to a missing blob")
        try:
            return np.load(io.BytesIO(self.blobs[key]), allow_pickle=False)
        except Exception as exc:
            raise SandboxError(f"unreadable array: {exc}") from None

    def decode(self, node):
        """The object ``node`` stands for; :class:`SandboxError` for anything malformed."""
        try:
            return self._decode(node, 0)
        except SandboxError:
            raise
        except Exception as exc:  # pandas, NumPy or json refusing the data: malformed too
            raise SandboxError(f"malformed value: {type(exc).__name__}: {str(exc)[:200]}"
                               ) from None

    def _decode(self, node, depth: int):
        import numpy as np

        self.items += 1
        if depth > MAX_DEPTH or self.items > MAX_ITEMS:
            raise SandboxError("value too deeply nested or too large")
        if node is None or type(node) in (bool, str):
            return node
        if type(node) is not dict or len(node) not in (1, 2):
            raise SandboxError(f"malformed value ({type(node).__name__})")
        tag = next(iter(node))
        body = node[tag]
        if tag == "__int__" and type(body) is str and len(body) <= 4300:
            return int(body)
        if tag == "__float__" and type(body) is str and len(body) <= 40:
            return float(body)
        if tag == "__complex__" and type(body) is list and len(body) == 2:
            return complex(float(body[0]), float(body[1]))
        if tag == "__npscalar__":
            arr = self._array(body)
            if arr.shape != ():
                raise SandboxError("malformed NumPy scalar")
            return arr[()]
        if tag == "__ndarray__":
            return self._array(body)
        if tag == "__objarray__" and type(body) is list:
            shape = node.get("shape")
            if type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape):
                raise SandboxError("malformed object array")
            out = np.empty(len(body), dtype=object)
            for i, item in enumerate(body):
                out[i] = self._decode(item, depth + 1)
            return out.reshape(shape)
        if tag in ("__list__", "__tuple__", "__set__", "__frozenset__") and type(body) is list:
            items = [self._decode(v, depth + 1) for v in body]
            return {"__list__": list, "__tuple__": tuple, "__set__": set,
                    "__frozenset__": frozenset}[tag](items)
        if tag == "__dict__" and type(body) is list:
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise SandboxError("malformed dict")
                out[self._decode(pair[0], depth + 1)] = self._decode(pair[1], depth + 1)
            return out
        if tag == "__tensor__":
            import tensorflow as tf

            arr = self._array(body)
            return tf.Variable(arr) if node.get("variable") is True else tf.constant(arr)
        if tag == "__keras__":
            return self._keras(body)
        if tag in ("__dataframe__", "__series__", "__index__") and type(body) is dict:
            import pandas as pd

            if tag == "__index__":
                return pd.Index(self._decode(body.get("data"), depth + 1),
                                name=self._decode(body.get("name"), depth + 1))
            index = self._decode(body.get("index"), depth + 1)
            if not isinstance(index, pd.Index):
                raise SandboxError("malformed pandas index")
            if tag == "__series__":
                return pd.Series(self._decode(body.get("data"), depth + 1), index=index,
                                 name=self._decode(body.get("name"), depth + 1))
            columns = self._decode(body.get("columns"), depth + 1)
            data = [self._decode(c, depth + 1) for c in body.get("data") or []]
            if type(columns) is not list or len(columns) != len(data) \
                    or not all(isinstance(c, np.ndarray) and c.ndim == 1 for c in data):
                raise SandboxError("malformed DataFrame")
            frame = pd.DataFrame({i: c for i, c in enumerate(data)}, index=index)
            frame.columns = columns
            return frame
        raise SandboxError(f"unknown or malformed tag {str(tag)[:40]!r}")

    def _keras(self, key):
        if not isinstance(key, str) or key not in self.blobs:
            raise SandboxError("reference to a missing blob")
        data = self.blobs[key]
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                if sum(i.file_size for i in zf.infolist()) > MAX_MESSAGE:
                    raise SandboxError("Keras model too large")
                config = json.loads(zf.read("config.json"))
        except SandboxError:
            raise
        except Exception as exc:
            raise SandboxError(f"unreadable Keras model: {exc}") from None
        _check_keras_config(config)
        import keras

        with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
            path = os.path.join(tmp, "model.keras")
            with open(path, "wb") as fh:
                fh.write(data)
            try:
                import tlutils  # noqa: F401  (registers the book's serializable classes)
            except ImportError:
                pass
            try:
                return keras.saving.load_model(path, compile=False, safe_mode=True)
            except Exception as exc:
                raise SandboxError(f"the Keras model could not be loaded safely: "
                                   f"{type(exc).__name__}: {str(exc)[:300]}") from None


def _check_keras_config(node, depth: int = 0) -> None:
    """Reject a Keras configuration that names code outside Keras and tlutils."""
    if depth > 200:
        raise SandboxError("Keras configuration too deeply nested")
    if isinstance(node, dict):
        module = node.get("module")
        if module is not None and not (isinstance(module, str) and (
                module in ("keras", "tlutils") or module.startswith(("keras.", "tlutils.")))):
            raise SandboxError(f"the Keras model names code from module {str(module)[:60]!r}")
        if node.get("class_name") in ("Lambda", "__lambda__", "function") \
                or "__lambda__" in node:
            raise SandboxError("the Keras model holds Python code (Lambda or function)")
        registered = node.get("registered_name")
        if isinstance(registered, str) and ">" in registered \
                and not registered.startswith("tlutils"):
            raise SandboxError(f"the Keras model holds custom class {registered[:60]!r}")
        for value in node.values():
            _check_keras_config(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _check_keras_config(value, depth + 1)


def module_reference(name: str):
    """The grader's own import of a module a test receives by name."""
    import importlib

    if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")) \
            or name.split(".")[0] not in ALLOWED_MODULES:
        raise SandboxError(f"module {str(name)[:60]!r} is not one a test may receive")
    return importlib.import_module(name)


# ---------------------------------------------------------------------------------------------
# The grader's side: start, talk to and stop one sandbox
# ---------------------------------------------------------------------------------------------

_BWRAP_OK: bool | None = None


def bwrap_available() -> bool:
    """Whether ``bwrap`` is installed and can create the namespaces the sandbox needs."""
    global _BWRAP_OK
    if _BWRAP_OK is None:
        exe = shutil.which("bwrap")
        if exe is None:
            _BWRAP_OK = False
        else:
            probe = subprocess.run(
                [exe, "--ro-bind", "/", "/", "--unshare-all", "--unshare-user",
                 "--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "true"],
                capture_output=True, timeout=60)
            _BWRAP_OK = probe.returncode == 0
    return _BWRAP_OK


def _bwrap_prefix(scratch: Path, zoo: Path, masked: list[Path]) -> list[str]:
    cmd = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/"]
    for path in masked:  # hidden behind an empty read-only folder
        cmd += ["--tmpfs", str(path), "--remount-ro", str(path)]
    cmd += ["--dev", "/dev", "--proc", "/proc",
            "--bind", str(scratch), INSIDE_TMP,
            "--bind", str(zoo), INSIDE_ZOO,
            "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000",
            "--disable-userns", "--cap-drop", "ALL",
            "--die-with-parent", "--new-session", "--hostname", "sandbox",
            "--chdir", INSIDE_WORK]
    return cmd


def _kill_tree(parent: psutil.Process) -> None:
    """Kill ``parent`` and everything below it.

    ``parent`` is the ``psutil.Process`` taken when the sandbox started, never a bare pid: once
    the sandbox has exited and been reaped (``Popen.poll`` or ``wait``), its pid is free and may
    already belong to an unrelated process, a notebook kernel of the test run beside it, say.
    psutil checks the process's start time and raises ``NoSuchProcess`` for a reused pid."""
    import psutil

    try:
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


_CGROUP_COUNT = 0
# Room above ``Limits.processes`` for the sandbox's own tasks (bubblewrap, the runner).
_SLACK = 16


def watchdog_cap(processes: int) -> int:
    """The pids cgroup's cap on the sandbox's tasks (processes and threads) for a limit of
    ``processes``; the watchdog acts only at that many processes, where the cgroup (or
    RLIMIT_NPROC, which binds at ``processes``) has failed. It used to act 8 below the
    cap: a fork bomb that the cgroup had stopped at 143 processes then got its sandbox
    killed as well, at times before the answers were out (a flaky grade)."""
    return processes + _SLACK


def _pids_cgroup(limit: int) -> Path | None:
    """A fresh cgroup capping the number of processes, where this user may make one (root,
    usually). ``RLIMIT_NPROC`` does that for other users, but never binds root, whose sandbox
    still runs as root outside its user namespace."""
    global _CGROUP_COUNT
    for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        if not (base / "cgroup.procs").exists():
            continue
        if base == Path("/sys/fs/cgroup"):  # cgroup v2: only where pids is delegated
            control = base / "cgroup.subtree_control"
            if not control.exists() or "pids" not in control.read_text(errors="ignore"):
                continue
        _CGROUP_COUNT += 1
        path = base / f"tl-grader-{os.getpid()}-{_CGROUP_COUNT}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(limit))
            return path
        except OSError:
            try:
                path.rmdir()
            except OSError:
                pass
    return None


class Sandbox:
    """One submission's sandbox. ``start()`` runs the notebook and returns its exported answers
    (decoded); ``call()`` calls one of its functions; ``close()`` kills everything it started.

    ``trusted=True`` runs the same runner without bubblewrap (own session, same resource
    limits, killed as a process tree): for the instructor's own notebooks only.
    """

    def __init__(self, notebook: Path, names: list[str], *, root: Path, zoo_source: Path | None,
                 masked: list[Path], limits: Limits, deadline: float, trusted: bool,
                 filename: str | None = None, files: dict[str, bytes] | None = None) -> None:
        self.deadline = deadline
        self.root = root
        self.scratch = root / "scratch"           # the sandbox's /tmp
        self.zoo = root / "zoo"                   # its TLUTILS_CACHE_DIR
        self.exchange = root / "grader"           # the grader's own temporary files
        for d in (self.scratch / "work", self.scratch / "home", self.exchange):
            d.mkdir(parents=True)
        if zoo_source is not None and zoo_source.is_dir():
            shutil.copytree(zoo_source, self.zoo / "zoo", symlinks=False,
                            ignore=shutil.ignore_patterns("*.lock", ".*.tmp*"))
        else:
            (self.zoo / "zoo").mkdir(parents=True)
        (self.scratch / "zoo").mkdir()
        filename = filename or notebook.name  # otter.Notebook() looks for its own name
        # the assignment's student files (those the student copy has beside the notebook)
        for rel, data in (files or {}).items():
            dest = self.scratch / "work" / rel
            if Path(rel).is_absolute() or ".." in Path(rel).parts or rel == filename:
                raise ValueError(f"files: unsafe student file name {rel!r}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        shutil.copyfile(notebook, self.scratch / "work" / filename)
        job = {"notebook": filename, "names": names,
               "limits": [limits.memory, limits.cpu, limits.file_size, limits.processes]}
        (self.scratch / "job.json").write_text(json.dumps(job))
        self.log = open(root / "log.txt", "wb")
        req_r, self.req_w = os.pipe()
        self.resp_r, resp_w = os.pipe()
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "LANG", "LC_ALL", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS",
                        "PYTHONHASHSEED", "TLUTILS_DATA_DIR", "CUDA_VISIBLE_DEVICES")}
        if trusted:
            tmp, work, zoo = str(self.scratch), str(self.scratch / "work"), str(self.zoo)
        else:
            tmp, work, zoo = INSIDE_TMP, INSIDE_WORK, INSIDE_ZOO
        env.update(TLUTILS_OFFLINE="1", HOME=f"{tmp}/home", TMPDIR=tmp, TLUTILS_CACHE_DIR=zoo,
                   MPLBACKEND="Agg", MPLCONFIGDIR=f"{tmp}/home/.mpl", GRADER_SANDBOX_WORK=work,
                   GRADER_SANDBOX_TMP=tmp)
        runner = [sys.executable, "-I", str(RUNNER), "--serve", str(req_r), str(resp_w)]
        if trusted:
            cmd = runner
        else:
            cmd = _bwrap_prefix(self.scratch, self.zoo, masked) + runner
        cap = watchdog_cap(limits.processes)
        self.cgroup = _pids_cgroup(cap) if os.geteuid() == 0 else None
        procs_file = str(self.cgroup / "cgroup.procs") if self.cgroup else None

        def _enter_cgroup() -> None:
            if procs_file:
                with open(procs_file, "w") as fh:
                    fh.write(str(os.getpid()))

        self.proc = subprocess.Popen(cmd, cwd=work if trusted else "/", env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     pass_fds=(req_r, resp_w), preexec_fn=_enter_cgroup)
        import psutil

        # Taken now, while the child cannot have been reaped: the identity every later kill uses.
        self.ps = psutil.Process(self.proc.pid)
        self.killed_for = ""
        self._watch = threading.Thread(target=self._watchdog, args=(cap,),
                                       daemon=True)
        self._watch.start()
        os.close(req_r)
        os.close(resp_w)

    def _watchdog(self, cap: int) -> None:
        """Second line against fork bombs: count the sandbox's processes, kill it once they
        reach ``cap``, which the cgroup or RLIMIT_NPROC should never have let them reach."""
        import psutil

        while self.proc.poll() is None:
            try:
                n = len(self.ps.children(recursive=True))
            except psutil.Error:
                return
            if n >= cap:
                self.killed_for = f"{n} processes (a limit of {cap - _SLACK})"
                _kill_tree(self.ps)
                return
            time.sleep(0.25)

    # -- messages
    def _receive(self) -> tuple[dict, dict]:
        try:
            return unpack_from(self.resp_r, self.deadline)
        except SandboxTimeout:
            raise
        except SandboxError as exc:
            if self.killed_for:
                raise SandboxError(f"stopped: it started {self.killed_for}") from None
            raise SandboxError(f"{exc}; last output: {self.log_tail()}") from None

    def log_tail(self, chars: int = 300) -> str:
        """The end of what the sandbox printed (its own words: for the instructor's eyes)."""
        try:
            self.log.flush()
            with open(self.log.name, "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - chars))
                return " | ".join(fh.read().decode("utf-8", "replace").split("\n")).strip()
        except OSError:
            return ""

    def _send(self, header: dict, blobs: dict) -> None:
        try:
            _write_all(self.req_w, pack(header, blobs))
        except (BrokenPipeError, OSError):
            raise SandboxError("the sandbox is gone (it exited or was killed)") from None

    def start(self) -> tuple[dict, dict]:
        """``(answers, report)``: the decoded answers and the runner's report of the run."""
        header, blobs = self._receive()
        if header.get("type") != "answers" or type(header.get("values")) is not dict:
            raise SandboxError("the sandbox sent no answers")
        decoder = Decoder(blobs, str(self.exchange))
        answers, missing = {}, {}
        for name, node in header["values"].items():
            if type(name) is not str:
                continue
            if type(node) is dict and set(node) == {"__missing__"}:
                missing[name] = str(node["__missing__"])[:300]
            elif type(node) is dict and set(node) == {"__function__"}:
                answers[name] = FunctionProxy(self, name)
            elif type(node) is dict and set(node) == {"__module__"}:
                try:
                    answers[name] = module_reference(node["__module__"])
                except SandboxError as exc:
                    missing[name] = str(exc)
                except ImportError:
                    missing[name] = f"module {str(node['__module__'])[:60]!r} is not installed"
            else:
                try:
                    answers[name] = decoder.decode(node)
                except SandboxError as exc:
                    missing[name] = str(exc)[:300]
        cells = header.get("cells") if type(header.get("cells")) is list else []
        errors = [str(c)[:200] for c in cells[:1000] if type(c) is str]
        return answers, {"missing": missing, "cell_errors": errors}

    def call(self, name: str, args: tuple, kwargs: dict):
        blobs: dict[str, bytes] = {}
        enc = Encoder(blobs, str(self.exchange))
        try:
            eargs = [enc.encode(a) for a in args]
            ekwargs = {k: enc.encode(v) for k, v in kwargs.items()}
        except Unsupported as exc:
            raise TypeError(f"cannot pass this argument to {name}: {exc}") from None
        self._send({"type": "call", "name": name, "args": eargs, "kwargs": ekwargs}, blobs)
        header, rblobs = self._receive()
        if header.get("type") != "result":
            raise SandboxError("malformed answer to a call")
        decoder = Decoder(rblobs, str(self.exchange))
        # copy back what the function did to its arguments (in place, like a local call)
        after = header.get("args_after")
        if type(after) is list and len(after) == len(args):
            for original, node in zip(args, after):
                if node is not None:
                    _update_in_place(original, decoder.decode(node))
        if "raised" in header:
            raise _exception(header.get("raised"), header.get("message"))
        node = header.get("value")
        if type(node) is dict and set(node) == {"__arg__"}:
            i = node["__arg__"]
            if type(i) is int and 0 <= i < len(args):
                return args[i]
            raise SandboxError("malformed argument reference")
        value = decoder.decode(node)
        jac = header.get("jacobians")
        if type(jac) is list:
            value = _attach_gradient(value, args, kwargs, jac, decoder)
        return value

    def close(self) -> None:
        for fd in (self.req_w, self.resp_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _kill_tree(self.ps)
        self.proc.wait()
        self._watch.join(timeout=5)
        if self.cgroup is not None:
            _empty_cgroup(self.cgroup)
        self.log.close()


def _empty_cgroup(path: Path) -> None:
    """Kill whatever is left in a cgroup (nothing, normally), then remove it."""
    import signal

    for _ in range(50):
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)
    try:
        path.rmdir()
    except OSError:
        pass


class FunctionProxy:
    """Stands for a student function in the tests: calling it runs the function in the
    submission's sandbox and returns a decoded copy of its result."""

    def __init__(self, sandbox: Sandbox, name: str) -> None:
        self._sandbox, self._name = sandbox, name
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        return self._sandbox.call(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<student function {self._name}>"


_EXCEPTIONS = {cls.__name__: cls for cls in (
    ValueError, TypeError, KeyError, IndexError, AssertionError, ZeroDivisionError,
    ArithmeticError, OverflowError, FloatingPointError, NotImplementedError, RuntimeError,
    AttributeError, NameError, LookupError, MemoryError, RecursionError, StopIteration)}


class StudentError(Exception):
    """An exception raised by student code that has no builtin equivalent."""


def _exception(kind, message) -> Exception:
    cls = _EXCEPTIONS.get(kind) if type(kind) is str else None
    text = str(message)[:2000] if message is not None else ""
    if cls is None:
        return StudentError(f"{str(kind)[:80]}: {text}")
    return cls(text)


def _update_in_place(original, new) -> None:
    import numpy as np

    try:
        if isinstance(original, np.ndarray) and isinstance(new, np.ndarray):
            if original.shape == new.shape and original.flags.writeable:
                original[...] = new
        elif type(original) is list and type(new) is list:
            original[:] = new
        elif type(original) is dict and type(new) is dict:
            original.clear()
            original.update(new)
        elif _keras_model_types() and isinstance(original, _keras_model_types()) \
                and isinstance(new, _keras_model_types()):
            old_layers, new_layers = original.layers, new.layers
            if [type(a) for a in old_layers] != [type(b) for b in new_layers]:
                return
            for a, b in zip(old_layers, new_layers):
                a.trainable = b.trainable
                weights = b.get_weights()
                if [w.shape for w in weights] == [w.shape for w in a.get_weights()]:
                    a.set_weights(weights)
        elif _is_tensor(original) and _is_tensor(new):
            tf = sys.modules["tensorflow"]
            if isinstance(original, tf.Variable) and tuple(original.shape) == tuple(new.shape):
                original.assign(new)
    except Exception:  # a failed copy-back leaves the grader's object as it was
        pass


def _attach_gradient(value, args, kwargs, jacobians, decoder):
    """Give a tensor computed in the sandbox the gradient the sandbox measured, so that a
    ``tf.GradientTape`` in a test sees through the call."""
    import tensorflow as tf

    inputs = [a for a in list(args) + list(kwargs.values()) if _is_tensor(a)]
    if not _is_tensor(value) or len(jacobians) != len(inputs):
        return value
    jac = [None if j is None else decoder._array(j) for j in jacobians]
    for j, x in zip(jac, inputs):
        if j is not None and tuple(j.shape) != tuple(value.shape) + tuple(x.shape):
            return value
    if all(j is None for j in jac):
        return value
    result = tf.constant(value)
    rank = len(result.shape)

    @tf.custom_gradient
    def attach(*xs):
        def grad(upstream):
            out = []
            for j, x in zip(jac, xs):
                if j is None:
                    out.append(tf.zeros_like(x))
                    continue
                jt = tf.constant(j, dtype=upstream.dtype)
                if rank == 0:
                    out.append(tf.cast(upstream * jt, x.dtype))
                else:
                    out.append(tf.cast(tf.tensordot(upstream, jt, axes=[list(range(rank))] * 2),
                                       x.dtype))
            return out

        return tf.identity(result), grad

    return attach(*[tf.convert_to_tensor(x) for x in inputs])


# ---------------------------------------------------------------------------------------------
# The runner: what executes inside the sandbox
# ---------------------------------------------------------------------------------------------

def _set_limits(memory: int, cpu: int, file_size: int, processes: int) -> None:
    import resource

    for what, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu),
                        (resource.RLIMIT_FSIZE, file_size), (resource.RLIMIT_NPROC, processes),
                        (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(what, (value, value))


def _serve(req_fd: int, resp_fd: int) -> None:  # pragma: no cover - runs in the sandbox
    tmp = os.environ.get("GRADER_SANDBOX_TMP", INSIDE_TMP)
    work = os.environ.get("GRADER_SANDBOX_WORK", INSIDE_WORK)
    with open(os.path.join(tmp, "job.json")) as fh:
        job = json.load(fh)
    _set_limits(*job["limits"])
    os.chdir(work)
    os.makedirs(os.environ["MPLCONFIGDIR"], exist_ok=True)
    import nbformat
    from IPython.core.interactiveshell import InteractiveShell

    # the runner's channel must not be inherited by anything the notebook starts
    os.set_inheritable(req_fd, False)
    os.set_inheritable(resp_fd, False)
    shell = InteractiveShell.instance()
    shell.enable_gui = lambda gui=None: None  # `%matplotlib inline` works without a kernel
    ns = shell.user_ns
    errors: list[str] = []
    try:
        nb = nbformat.read(job["notebook"], as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "code"]
    except Exception as exc:
        errors.append(f"notebook: unreadable ({type(exc).__name__})")
        cells = []
    for i, cell in enumerate(cells):
        result = shell.run_cell(cell.source, store_history=False, silent=False)
        exc = result.error_in_exec or result.error_before_exec
        if exc is not None:
            errors.append(f"cell {i + 1}: {type(exc).__name__}")
        sys.stdout.flush()
        sys.stderr.flush()
    values = {}
    blobs: dict[str, bytes] = {}
    import types

    for name in job["names"]:
        if name not in ns:
            values[name] = {"__missing__": f"{name} is not defined"}
            continue
        value = ns[name]
        if isinstance(value, types.ModuleType):
            values[name] = {"__module__": value.__name__}
        elif callable(value) and isinstance(value, (types.FunctionType, types.BuiltinFunctionType,
                                                    types.MethodType)) \
                or (callable(value) and type(value).__name__ == "partial"):
            values[name] = {"__function__": name}
        else:
            try:
                mark = len(blobs)
                values[name] = Encoder(blobs, tmp).encode(value)
            except Exception as exc:
                for key in list(blobs)[mark:]:
                    del blobs[key]
                values[name] = {"__missing__": f"{name}: {str(exc)[:200]}"}
    _write_all(resp_fd, pack({"type": "answers", "values": values, "cells": errors}, blobs))
    while True:
        try:
            header, rblobs = unpack_from(req_fd)
        except SandboxError:
            return
        blobs = {}
        _write_all(resp_fd, pack(_answer_call(ns, header, rblobs, blobs, tmp), blobs))


def _answer_call(ns, header, rblobs, blobs, tmp):  # pragma: no cover - runs in the sandbox
    name = header.get("name")
    func = ns.get(name)
    decoder = Decoder(rblobs, tmp)
    try:
        args = [decoder.decode(a) for a in header.get("args", [])]
        kwargs = {k: decoder.decode(v) for k, v in header.get("kwargs", {}).items()}
    except Exception as exc:
        return {"type": "result", "raised": "TypeError", "message": f"bad arguments: {exc}"}
    tensors = [a for a in list(args) + list(kwargs.values()) if _is_tensor(a)]
    out: dict = {"type": "result"}
    tape = None
    try:
        if not callable(func):
            raise NameError(f"{name} is not a function")
        if tensors:
            import tensorflow as tf

            tape = tf.GradientTape(persistent=True)
            with tape:
                for t in tensors:
                    tape.watch(t)
                value = func(*args, **kwargs)
        else:
            value = func(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the grader as data
        out.update(raised=type(exc).__name__, message=str(exc)[:2000])
        value = None
    enc = Encoder(blobs, tmp)
    if "raised" not in out:
        same = [i for i, a in enumerate(args) if value is a]
        try:
            out["value"] = {"__arg__": same[0]} if same else enc.encode(value)
        except Exception as exc:
            out.update(raised="TypeError", message=f"the result of {name} cannot be graded: "
                                                   f"{str(exc)[:300]}")
        if tape is not None and "value" in out and _is_tensor(value) \
                and value.dtype.is_floating:
            jac = []
            for t in tensors:
                try:
                    size = int(value.shape.num_elements()) * int(t.shape.num_elements())
                    j = tape.jacobian(value, t) if size <= 4_000_000 else None
                except Exception:
                    j = None
                jac.append(None if j is None else enc._array(j.numpy()))
            out["jacobians"] = jac
    after = []
    for a in args:
        try:
            after.append(enc.encode(a) if not isinstance(a, (str, int, float, tuple))
                         else None)
        except Exception:
            after.append(None)
    out["args_after"] = after
    return out


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--serve":
    _serve(int(sys.argv[2]), int(sys.argv[3]))
