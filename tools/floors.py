"""Print tlutils' runtime requirements from ``pyproject.toml`` (dependencies and the ``text``
extra), one a line. ``make compat`` installs them with uv's ``--resolution lowest-direct``: each
at the lowest released version its floor allows, and checks that every floor is a real lower
bound (a ``>=``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def floors(extras: tuple[str, ...] = ("text",)) -> list[str]:
    """``name>=floor`` for each dependency (and each listed extra's) in ``pyproject.toml``;
    raises ValueError for a requirement without a ``>=`` floor."""
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S).group(1)
    found = re.findall(r'"([A-Za-z0-9_.\-]+)>=([0-9][^",;<\s]*)', deps)
    extras = tuple(e for e in extras if e)
    for extra in extras:
        line = re.search(rf"^{extra} = \[(.*?)\]", text, re.M)
        if line is None:
            raise ValueError(f"pyproject.toml has no extra {extra!r}")
        found += re.findall(r'"([A-Za-z0-9_.\-]+)>=([0-9][^",;<\s]*)', line.group(1))
    every = re.findall(r'"([^"]+)"', deps) + [
        r for extra in extras
        for r in re.findall(r'"([^"]+)"', re.search(rf"^{extra} = \[(.*?)\]", text, re.M).group(1))]
    if len(every) != len(found):
        raise ValueError(f"every requirement needs a >= floor: {every}")
    return [f"{name}>={version}" for name, version in found]


def lowest(specs: list[str], uv: str) -> list[str]:
    """``name==version``: the lowest released version each spec allows (uv resolves each one
    alone, for this interpreter, without dependencies)."""
    import subprocess

    pins = []
    for spec in specs:
        done = subprocess.run(
            [uv, "pip", "install", "--dry-run", "--no-deps", "--resolution", "lowest-direct",
             "--python", sys.executable, spec], capture_output=True, text=True, check=True)
        found = re.findall(r"^ \+ (\S+==\S+)$", done.stdout + done.stderr, re.M)
        if len(found) != 1:
            raise RuntimeError(f"uv found no single release for {spec}:\n{done.stderr}")
        pins.append(found[0])
    return pins


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--no-extras" in args:  # the runtime dependencies only
        args = [a for a in args if a != "--no-extras"] + [""]
    if args[:1] == ["--lowest"]:
        uv = str(Path(sys.executable).with_name("uv"))
        print("\n".join(lowest(floors(tuple(args[1:]) or ("text",)), uv)))  # noqa: E501
    else:
        print("\n".join(floors(tuple(args) or ("text",))))
