#!/usr/bin/env python3
"""Generate the type stub of the compiled core, ``python/ramh_rt/_core.pyi``, with pybind11-stubgen.

    python tools/gen_stubs.py           # regenerate the checked-in stub from the importable ramh_rt._core
    python tools/gen_stubs.py --check   # exit 1 (and show a diff) when the checked-in stub is out of date

The stub is generated from whichever ``ramh_rt._core`` Python imports: the installed package, or a developer build
with ``PYTHONPATH=python``. Its text depends on the pybind11 that compiled the core (signature spelling) and on
pybind11-stubgen's version, so both are pinned (pyproject.toml: build-system and the ``test`` extra).
Run after changing a binding in ``cpp/bindings/``; tests/test_stubs.py fails until the stub is regenerated.
"""
from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STUB = REPO / "python" / "ramh_rt" / "_core.pyi"
# pybind11 spells a structured dtype by its C++ type (NDArray[ramh::ErosionRecord]), which is no Python expression:
# stubgen is told to accept that one (it writes NDArray[...]) and REPLACEMENTS turns it into what a structured array
# is to NumPy's typing, NDArray[numpy.void]. Any other error fails the run (--exit-code).
STUBGEN_ARGS = ["--numpy-array-remove-parameters", "--ignore-invalid-expressions", r"ramh::\w+", "--exit-code"]
REPLACEMENTS = {"numpy.typing.NDArray[...]": "numpy.typing.NDArray[numpy.void]"}


def generate() -> str:
    """The stub text of the importable ``ramh_rt._core``.

    Raises:
        RuntimeError: pybind11-stubgen is not installed, or failed (its output is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="ramh-stubs-") as tmp:
        cmd = [sys.executable, "-m", "pybind11_stubgen", *STUBGEN_ARGS, "-o", tmp, "ramh_rt._core"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        out = Path(tmp) / "ramh_rt" / "_core.pyi"
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        text = out.read_text(encoding="utf-8")
    for old, new in REPLACEMENTS.items():
        text = text.replace(old, new)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the checked-in stub instead of writing it")
    args = ap.parse_args(argv)
    text = generate()
    if args.check:
        current = STUB.read_text(encoding="utf-8") if STUB.is_file() else ""
        if current == text:
            return 0
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                   str(STUB.relative_to(REPO)), "generated"))
        print(f"\n{STUB.relative_to(REPO)} is out of date: run python tools/gen_stubs.py", file=sys.stderr)
        return 1
    tmp = STUB.with_suffix(".pyi.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, STUB)
    print(f"wrote {STUB.relative_to(REPO)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
