"""nbval's notebook kernels get a second and third chance to start (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tools.kernel_start import retrying_kernel_start


def test_nbval_uses_the_retrying_start():
    import nbval.kernel

    assert getattr(nbval.kernel.start_new_kernel, "retrying", False)


def test_a_failed_start_is_retried_and_reported():
    calls = []

    def flaky(startup_timeout=60, kernel_name="python", **kwargs):
        calls.append(kwargs["stderr"])
        if len(calls) < 3:
            kwargs["stderr"].write(b"zmq.error.ZMQError: Address already in use\n")
            kwargs["stderr"].flush()
            raise RuntimeError("Kernel died before replying to kernel_info")
        return "km", "kc"

    start = retrying_kernel_start(flaky, pause=0)
    with pytest.warns(UserWarning) as record:
        assert start(startup_timeout=5, kernel_name="python", cwd=".") == ("km", "kc")
    assert len(calls) == 3
    said = [str(w.message) for w in record]
    assert len(said) == 2 and all("Address already in use" in s for s in said)
    assert "attempt 2 of 3" in said[1]


def test_a_kernel_that_never_starts_still_fails():
    def dead(**kwargs):
        raise RuntimeError("Kernel died before replying to kernel_info")

    start = retrying_kernel_start(dead, attempts=2, pause=0)
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="Kernel died"):
        start(kernel_name="python")
