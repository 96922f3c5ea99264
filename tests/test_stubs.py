"""The checked-in type stub of the compiled core (python/ramh_rt/_core.pyi) matches the built module, and ships."""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ramh_rt
from ramh_rt import _core

REPO = Path(__file__).resolve().parent.parent
STUB = REPO / "python" / "ramh_rt" / "_core.pyi"


def test_stub_and_py_typed_are_in_the_package():
    assert (REPO / "python" / "ramh_rt" / "py.typed").is_file()
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert public <= defined, f"the stub lacks {sorted(public - defined)}"
    assert "[...]" not in STUB.read_text(encoding="utf-8"), "a type pybind11-stubgen could not resolve"
    # Next to the imported core (the installed package under tools/test.sh) the stub and marker are present too.
    package = Path(ramh_rt.__file__).parent
    assert (package / "_core.pyi").is_file() and (package / "py.typed").is_file()


@pytest.mark.skipif(importlib.util.find_spec("pybind11_stubgen") is None,
                    reason="pybind11-stubgen is not installed (it is in the test extra)")
def test_stub_is_what_pybind11_stubgen_generates_from_the_built_core():
    # The generator imports ramh_rt._core in a child process: give it the same ramh_rt this process imported.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(ramh_rt.__file__).parent.parent)]
                                                      + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                         if p]))
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gen_stubs.py"), "--check"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"


def test_stub_declares_every_device_array_member():
    """The stub's DeviceArray has every public method and property of the built class (e.g. reshape), so type
    checkers accept what the core offers."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DeviceArray")
    declared = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    public = {name for name in vars(_core.DeviceArray) if not name.startswith("_")}
    assert "reshape" in public
    assert public <= declared, f"the stub's DeviceArray lacks {sorted(public - declared)}"
