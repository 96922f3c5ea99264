"""ramh_rt.fs: atomic output (also exclusive), the one image-file discovery, and collision-free output names."""
from __future__ import annotations

import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramh_rt.fs import (HAND_SUFFIXES, IMAGE_SUFFIXES, OutputNames, atomic_output, expand_image_paths, names_root,
                        write_atomic)


def test_write_atomic_bytes_and_text(tmp_path):
    p = write_atomic(tmp_path / "out.bin", b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    write_atomic(tmp_path / "out.txt", "héllo")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "héllo"
    write_atomic(tmp_path / "out.txt", "second")
    assert (tmp_path / "out.txt").read_text() == "second"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.bin", "out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o666 & ~umask
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "x", 3)


def test_write_atomic_keeps_existing_permissions(tmp_path):
    p = tmp_path / "keep"
    p.write_text("old")
    p.chmod(0o640)
    write_atomic(p, "new")
    assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text() == "new"


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    p = tmp_path / "result.json"
    p.write_text("old content")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(p, "w") as fh:
            fh.write("partial")
            raise RuntimeError("boom")
    assert p.read_text() == "old content"
    assert [x.name for x in tmp_path.iterdir()] == ["result.json"]
    with atomic_output(tmp_path / "new.json", "w") as fh:
        fh.write("{}")
    assert (tmp_path / "new.json").read_text() == "{}"
    with pytest.raises(ValueError, match="mode"):
        with atomic_output(p, "a"):
            pass
    with pytest.raises(ValueError, match="encoding"):
        with atomic_output(p, "wb", encoding="utf-8"):
            pass
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "such" / "dir.txt", "x")


def test_write_atomic_exclusive_never_replaces(tmp_path):
    p = tmp_path / "made.json"
    write_atomic(p, "first", exclusive=True)
    with pytest.raises(FileExistsError, match="not overwritten"):
        write_atomic(p, "second", exclusive=True)
    assert p.read_text() == "first"
    assert [x.name for x in tmp_path.iterdir()] == ["made.json"]  # no temporary file left behind


def test_atomic_output_accepts_names_that_are_not_utf8(tmp_path):
    name = os.fsdecode(b"caf\xe9_R.json")  # a Latin-1 name, as old scanners write them
    write_atomic(tmp_path / name, "{}")
    assert os.listdir(os.fsencode(tmp_path)) == [b"caf\xe9_R.json"]


# ---------------------------------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------------------------------

def test_expand_image_paths_is_recursive_sorted_and_skips_hidden_and_excluded(tmp_path):
    for rel in ("b/2.PNG", "b/1.dcm", "a/x.tif", "a/.tmp.png", ".hidden/y.png", "a/notes.txt", "out/o.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    got = expand_image_paths([tmp_path], exclude=[tmp_path / "out"])
    assert [p.relative_to(tmp_path).as_posix() for p in got] == ["a/x.tif", "b/1.dcm", "b/2.PNG"]
    # a named file is kept whatever its extension; the same file twice is listed once; missing ones are kept
    assert expand_image_paths([tmp_path / "a/notes.txt", tmp_path / "a/x.tif", tmp_path / "a"]) == [
        tmp_path / "a/notes.txt", tmp_path / "a/x.tif"]
    assert expand_image_paths([tmp_path / "gone.png"]) == [tmp_path / "gone.png"]
    with pytest.raises(FileNotFoundError, match="gone.png"):
        expand_image_paths([tmp_path / "gone.png"], missing_ok=False)
    assert {".png", ".dcm", ".tiff", ".jpg"} <= IMAGE_SUFFIXES


# ---------------------------------------------------------------------------------------------------------------------
# output names
# ---------------------------------------------------------------------------------------------------------------------

def test_output_names_mirror_folders(tmp_path):
    ins = [tmp_path / "a/x.png", tmp_path / "b/x.png", tmp_path / "c/x_1.png"]
    names = OutputNames(tmp_path / "out", ins)
    got = [names.claim(p, ".json").relative_to(tmp_path / "out").as_posix() for p in ins]
    assert got == ["a/x.json", "b/x.json", "c/x_1.json"]
    assert [names.key(p) for p in ins] == ["a/x", "b/x", "c/x_1"]
    with pytest.raises(ValueError, match="already claimed"):
        names.claim(ins[0], ".json")
    with pytest.raises(ValueError, match="not an input"):
        names.claim(tmp_path / "z.png", ".json")
    with pytest.raises(ValueError, match="separator"):
        names.claim(ins[0], "/x.json")


def test_output_names_never_name_an_input(tmp_path):
    ins = [tmp_path / "d/h.png", tmp_path / "d/h_overlay.png"]
    names = OutputNames(tmp_path / "d", ins)
    assert names.claim(ins[0], ".json").name == "h.json"
    assert names.claim(ins[0], "_overlay.png").name == "h~2_overlay.png"  # d/h_overlay.png is an input
    assert names.claim(ins[1], "_overlay.png").name == "h_overlay_overlay.png"


_segment = st.sampled_from(["a", "b", "x", "x_1", "x~2", "h", "h_overlay", "x_L", "=x", "caf\udce9"])
_tree = st.lists(st.tuples(st.lists(st.sampled_from(["a", "b", "x"]), max_size=2), _segment,
                           st.sampled_from([".png", ".dcm", ".PNG", ".tif"])), min_size=1, max_size=12)
_suffixes = st.lists(st.sampled_from([".json", "_overlay.png", "_L.json", "_R.json", "_dicom", ""]), min_size=1,
                     max_size=4, unique=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_tree, suffixes=_suffixes, out_inside=st.booleans())
def test_output_names_are_unique_stable_and_never_an_input(tmp_path_factory, tree, suffixes, out_inside):
    """Random trees of colliding names (same stems in several folders, stems that look like other inputs' outputs,
    stems with marks), single outputs and per-hand ones (claim_hands) mixed: every claimed path is distinct, none is
    an input, and the same run names the same way."""
    root = tmp_path_factory.mktemp("in")
    inputs = list(dict.fromkeys(root.joinpath(*dirs, stem + ext) for dirs, stem, ext in tree))
    out = root if out_inside else root.parent / (root.name + "_out")

    def run():
        names = OutputNames(out, inputs)
        got = []
        for p in inputs:
            got += [names.claim(p, s) for s in suffixes]
            got += names.claim_hands(p, "_hands.json").values()
        return got, names

    first, names = run()
    assert len(set(first)) == len(first)
    resolved_inputs = {p.resolve() for p in inputs}
    assert not resolved_inputs & {p.resolve() for p in first}
    assert all(out.resolve() in p.resolve().parents for p in first)
    keys = [names.key(p) for p in inputs]
    assert len(set(keys)) == len(keys)
    assert run()[0] == first  # stable


def test_claim_hands_gives_every_hand_suffix_one_mark(tmp_path):
    """Per-hand outputs are claimed for every hand suffix at once: an input's names do not depend on the hands found,
    and an input whose stem looks like another's hand output gets a mark instead of sharing a path."""
    ins = [tmp_path / "in/x.png", tmp_path / "in/x_L.png"]
    names = OutputNames(tmp_path / "out", ins)
    got = {h: p.name for h, p in names.claim_hands(ins[0], ".json").items()}
    assert got == {"": "x.json", "_L": "x_L.json", "_R": "x_R.json", "_hand1": "x_hand1.json",
                   "_hand2": "x_hand2.json"}
    assert set(got) == set(HAND_SUFFIXES)
    second = names.claim_hands(ins[1], ".json")
    assert second[""].name == "x_L~2.json" and second["_R"].name == "x_L~2_R.json"  # x_L.json is x.png's
    assert names.claimed(ins[0], "_R.json") == tmp_path / "out/x_R.json"
    assert names.claimed(ins[0], "_overlay.png") is None
    with pytest.raises(ValueError, match="already claimed"):
        names.claim_hands(ins[0], ".json")
    with pytest.raises(ValueError, match="already claimed"):
        names.claim(ins[0], "_L.json")


def test_root_mirrors_the_given_folder_and_add_needs_it(tmp_path):
    (tmp_path / "in/sub").mkdir(parents=True)
    only = tmp_path / "in/sub/h.png"
    only.write_bytes(b"x")
    assert OutputNames(tmp_path / "o", [only]).claim(only, ".json") == tmp_path / "o/h.json"
    assert names_root([tmp_path / "in"]) == tmp_path / "in" and names_root([only]) is None
    assert names_root([tmp_path / "in", only]) is None
    names = OutputNames(tmp_path / "o", [only], root=names_root([tmp_path / "in"]))
    assert names.claim(only, ".json") == tmp_path / "o/sub/h.json"
    names.add(tmp_path / "in/later.dcm")  # a watched folder's new file (need not exist to be named)
    assert names.claim(tmp_path / "in/later.dcm", ".json") == tmp_path / "o/later.json"
    names.add(only)  # already an input: nothing
    with pytest.raises(ValueError, match="not inside the root"):
        names.add(tmp_path / "elsewhere.png")
    with pytest.raises(ValueError, match="not inside the root"):
        OutputNames(tmp_path / "o", [tmp_path / "elsewhere.png"], root=tmp_path / "in")
    with pytest.raises(ValueError, match="root"):
        OutputNames(tmp_path / "o", [only]).add(tmp_path / "in/other.png")


def test_a_symlink_in_the_root_to_a_file_elsewhere_is_named_where_it_lies(tmp_path):
    """A watched folder (or ``ramh analyze DIR``) may hold a link to a file outside it: it is named by its place in
    the folder, not refused as an input outside the root (which stopped ``ramh watch``)."""
    (tmp_path / "in/sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere/x.png"
    target.write_bytes(b"x")
    link = tmp_path / "in/sub/link.png"
    try:
        link.symlink_to(target)
    except OSError:
        pytest.skip("symbolic links are not available here")
    names = OutputNames(tmp_path / "o", [link], root=tmp_path / "in")
    assert names.claim(link, ".json") == tmp_path / "o/sub/link.json"
    watched = OutputNames(tmp_path / "o2", [], root=tmp_path / "in")
    watched.add(link)
    assert watched.claim(link, ".json") == tmp_path / "o2/sub/link.json"
    with pytest.raises(ValueError, match="not inside the root"):
        watched.add(tmp_path / "elsewhere/y.png")  # a file given outside the folder still is refused
    assert target.read_bytes() == b"x"
