"""Start nbval's notebook kernels with retries (used by tests/conftest.py).

CI stop 21 failed on one notebook: every cell of 03_1 reported "Kernel died before replying
to kernel_info", and nothing else in the run failed. nbval starts each notebook's kernel once
and sends its stderr to /dev/null, so a kernel that dies while starting fails the whole notebook
and leaves no word of why. Two causes were found that fit and neither depends on the notebook:
a port taken between jupyter_client choosing it and the kernel binding it (two workers, the
newcomer run and the browser test all open sockets), and the grader killing a process tree by
a pid its sandbox no longer owned (fixed in assignments/sandbox.py). Starting again is what a
person would do, so the start gets three attempts and the kernel's own stderr goes into a
warning in the test summary. Only the start is retried: a notebook that fails running still
fails.
"""

from __future__ import annotations

import tempfile
import time
import warnings

KERNEL_START_ATTEMPTS = 3


def retrying_kernel_start(start, attempts: int = KERNEL_START_ATTEMPTS, pause: float = 2.0):
    """Wrap nbval's ``start_new_kernel(startup_timeout, kernel_name, **popen_kwargs)``."""
    def start_new_kernel(*args, **kwargs):
        for attempt in range(1, attempts + 1):
            with tempfile.TemporaryFile() as err:
                kwargs["stderr"] = err  # the kernel's stderr (nbval: /dev/null)
                try:
                    return start(*args, **kwargs)
                except RuntimeError as exc:
                    err.seek(0)
                    said = err.read()[-3000:].decode("utf-8", "replace").strip()
                    warnings.warn(f"notebook kernel failed to start (attempt {attempt} of "
                                  f"{attempts}): {exc}; its stderr: {said or '(nothing)'}",
                                  stacklevel=2)
                    if attempt == attempts:
                        raise
            time.sleep(pause)

    start_new_kernel.retrying = True
    return start_new_kernel

