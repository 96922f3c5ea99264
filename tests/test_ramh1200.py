"""RAM-H1200 layout: writer -> reader round trip, the accepted input variants, and every malformed-input case."""
from __future__ import annotations

import filecmp
import functools
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from ramh_rt import anatomy
from ramh_rt.geometry import Roi
from ramh_train.datasets.errors import DatasetError
from ramh_train.datasets.fileio import read_grayscale, to_uint8
from ramh_train.datasets.layout import Layout
from ramh_train.datasets.ramh1200 import RamH1200
from ramh_train.datasets.validate import validate
from ramh_train.datasets.writer import DatasetWriter, crop_window, write_sample

from ramh_data_fixtures import make_hand

# pycocotools 2.0 calls np.array(copy=False) on its own objects; harmless, and not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SEG = "Segmentation/train"
BONE = f"{SEG}/_annotations_bone_rle.coco.json"
BE = f"{SEG}/_annotations_be_rle.coco.json"
JOINTS = "JointDetection/train/_annotations_joints.coco.json"
BE_SCORES = "SvdH_Scoring/SvdH_BE_Scoring/train/_annotation_be_scores.json"
JSN_SCORES = "SvdH_Scoring/SvdH_JSN_Scoring/train/_annotation_jsn_scores.json"


def write(root: Path, samples_by_split: dict[str, list]) -> None:
    with DatasetWriter(root) as w:
        for split, samples in samples_by_split.items():
            for s in samples:
                w.add(s, split)


@pytest.fixture
def hands():
    return [make_hand(i) for i in range(3)]


@pytest.fixture
def dataset(tmp_path, hands):
    root = tmp_path / "ds"
    write(root, {"train": hands[:2], "val": hands[2:]})
    return root


def load_json(root: Path, rel: str):
    return json.loads((root / rel).read_text())


def dump_json(root: Path, rel: str, obj) -> None:
    (root / rel).write_text(json.dumps(obj))


# ---------------------------------------------------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------------------------------------------------

def assert_same_hand(got, want, *, image=None):
    assert got.stem == want.stem and got.side == want.side
    assert got.spacing_mm == want.spacing_mm
    np.testing.assert_array_equal(got.image, want.image if image is None else image)
    assert list(got.bone_masks) == sorted(want.bone_masks, key=anatomy.BONE_INDEX.__getitem__)
    for k, m in want.bone_masks.items():
        assert got.bone_masks[k].dtype == bool and got.bone_masks[k].shape == want.shape
        np.testing.assert_array_equal(got.bone_masks[k], m)
    assert set(got.erosion_masks) == set(want.erosion_masks)
    for k, m in want.erosion_masks.items():
        np.testing.assert_array_equal(got.erosion_masks[k], m)
    assert got.joint_boxes == want.joint_boxes
    assert got.joint_rois == want.joint_rois
    assert got.be_scores == want.be_scores and got.jsn_scores == want.jsn_scores


def test_round_trip_is_exact(dataset, hands):
    ds = RamH1200(dataset)
    assert ds.splits == ("train", "val")
    assert ds.stems("train") == sorted(h.stem for h in hands[:2])
    assert len(ds) == 3
    for h in hands:
        got = ds.load(h.stem)
        assert_same_hand(got, h)
        assert got.meta["split"] == ("val" if h is hands[2] else "train")
        assert got.meta["metadata"] == {"isRA": str(h.meta["metadata"]["isRA"]), "Sex": h.meta["metadata"]["Sex"]}
    assert [s.stem for s in ds] == ds.stems()
    assert ds.warnings == []
    assert validate(dataset) == []
    # A DataLoader with spawned workers pickles the dataset, parsed index included.
    clone = pickle.loads(pickle.dumps(ds))
    assert_same_hand(clone.load(hands[0].stem), hands[0])


def test_round_trip_of_a_roi_box_crossing_the_border_keeps_the_rbox(dataset, hands):
    ds = RamH1200(dataset)
    got = ds.load(hands[0].stem)
    assert got.joint_rois["SR"] == Roi(78.0, 61.0, 12.0, 9.0, 15.0)
    x0, y0, x1, y1 = got.joint_boxes["SR"]
    assert x1 == 80.0 and y1 == 64.0 and x0 < 78 and y0 < 61  # clipped to the 80 x 64 image


def test_uint16_images_are_written_with_the_min_max_rule(tmp_path):
    h = make_hand(7, dtype=np.uint16)
    write(tmp_path, {"train": [h]})
    got = RamH1200(tmp_path).load(h.stem)
    lo, hi = int(h.image.min()), int(h.image.max())
    np.testing.assert_array_equal(got.image, np.rint((h.image - lo) * (255.0 / (hi - lo))).astype(np.uint8))
    assert got.image.min() == 0 and got.image.max() == 255
    assert_same_hand(got, h, image=got.image)


def test_to_uint8_rule_edge_cases():
    np.testing.assert_array_equal(to_uint8(np.full((2, 3), 1000, np.uint16)), np.zeros((2, 3), np.uint8))
    np.testing.assert_array_equal(to_uint8(np.array([[0, 2, 4]], np.uint16)), [[0, 128, 255]])  # 127.5 -> 128 (even)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        to_uint8(np.zeros((2, 2), np.float32))


def test_crops_are_axis_aligned_windows_of_the_boxes(dataset, hands):
    ds = RamH1200(dataset)
    h = hands[1]
    for kind, stems in (("be", anatomy.BE_STEMS), ("jsn", anatomy.JSN_STEMS)):
        for roi in stems:
            path = ds.crop_path(h.stem, roi, kind)
            if roi not in h.joint_boxes:
                assert not path.exists()
                continue
            x0, y0, x1, y1 = h.joint_boxes[roi]
            r0, r1, c0, c1 = crop_window([x0, y0, x1 - x0, y1 - y0], *h.shape)
            np.testing.assert_array_equal(ds.load_crop(h.stem, roi, kind), h.image[r0:r1, c0:c1])


def test_score_items_need_no_decoding_and_report_missing_crops(dataset, hands):
    ds = RamH1200(dataset)
    items = ds.score_items("train", "be")
    want = [(h.stem, k) for h in sorted(hands[:2], key=lambda h: h.stem) for k in h.be_scores]
    assert [(i.stem, i.key) for i in items] == want
    assert all(i.crop_path.is_file() and i.score == ds.scores(i.stem, kind="be")[i.key] for i in items)
    assert all(i.side == anatomy.side_from_stem(i.stem) and i.roi == i.key[3:] for i in items)
    items[0].crop_path.unlink()
    with pytest.raises(DatasetError, match="scored ROI has no crop file"):
        ds.score_items("train", "be")
    assert len(ds.score_items("train", "be", skip_missing_crops=True)) == len(want) - 1
    assert [p.message for p in ds.warnings] == ["scored ROI has no crop file"]


def test_output_is_deterministic_whatever_the_order(tmp_path, hands):
    write(tmp_path / "a", {"train": hands})
    write(tmp_path / "b", {"train": hands[::-1]})
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")

    def same(c):
        assert not c.left_only and not c.right_only and not c.funny_files
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        assert not mismatch and not errors, mismatch
        for sub in c.subdirs.values():
            same(sub)

    same(cmp)


def test_writes_are_atomic_and_a_failed_hand_leaves_nothing_behind(tmp_path, hands, monkeypatch):
    from ramh_train.datasets import writer as writer_mod

    real, calls = writer_mod.encode_bmp, []

    def flaky(image):
        calls.append(1)
        if len(calls) == 4:  # the image and two crops are written, then the disk "fails"
            raise OSError("disk full")
        return real(image)

    monkeypatch.setattr(writer_mod, "encode_bmp", flaky)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path, {"train": hands})
    monkeypatch.setattr(writer_mod, "encode_bmp", real)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(hands[0].stem in str(p) for p in files)  # its image and crops were removed
    assert not any(p.name.endswith(".tmp") for p in files)
    assert [p for p in tmp_path.rglob("*") if p.is_dir() and hands[0].stem in p.name] == []
    umask = os.umask(0)
    os.umask(umask)
    write(tmp_path / "ok", {"train": hands[:1]})
    for p in (tmp_path / "ok").rglob("*"):
        if p.is_file():
            assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p


def test_append_refuses_files_with_other_category_ids(tmp_path, hands):
    write(tmp_path, {"train": hands[:1]})
    top = load_json(tmp_path, BONE)
    top["categories"][22]["name"] = "Pisifrom_Triquetrum"  # the real dataset's spelling: readable, not appendable
    dump_json(tmp_path, BONE, top)
    assert RamH1200(tmp_path).load(hands[0].stem).bone_masks.keys() == hands[0].bone_masks.keys()
    with pytest.raises(ValueError, match="differ from this writer's"):
        write_sample(hands[1], tmp_path, "train")
    assert not (tmp_path / SEG / f"{hands[1].stem}.bmp").exists()


def test_writer_refuses_a_non_empty_split_and_appends_on_request(tmp_path, hands):
    write(tmp_path, {"train": hands[:1]})
    with pytest.raises(ValueError, match="already holds data.*append=True"):
        write(tmp_path, {"train": hands[1:2]})
    before = load_json(tmp_path, BONE)
    write_sample(hands[1], tmp_path, "train")
    after = load_json(tmp_path, BONE)
    assert after["images"][:1] == before["images"] and after["annotations"][:len(before["annotations"])] == \
        before["annotations"]
    with pytest.raises(ValueError, match="already in split 'train'"):
        write_sample(hands[1], tmp_path, "train")
    with pytest.raises(ValueError, match="already in split 'train'"):
        write_sample(hands[0], tmp_path, "val")
    ds = RamH1200(tmp_path)
    for h in hands[:2]:
        assert_same_hand(ds.load(h.stem), h)
    assert validate(tmp_path) == []


@pytest.mark.parametrize("change, message", [
    (lambda s: setattr(s, "side", "R" if s.side == "L" else "L"), "must end in _"),
    (lambda s: setattr(s, "image", s.image.astype(np.float32)), "sample.image"),
    (lambda s: s.bone_masks.__setitem__("Capitate", np.zeros((3, 3), bool)), r"bone_masks\['Capitate'\]"),
    (lambda s: s.bone_masks.__setitem__("Femur", np.zeros(s.shape, bool)), "unknown bone class 'Femur'"),
    (lambda s: s.erosion_masks.__setitem__("BE", np.zeros(s.shape, bool)), "unknown name 'BE'"),
    (lambda s: s.be_scores.__setitem__("BE_R", 6), r"BE_R'\] = 6 is outside 0..5"),
    (lambda s: s.jsn_scores.__setitem__("JSN_IP", 1), "'JSN_IP' is not a JSN score key"),
    (lambda s: s.joint_boxes.__setitem__("R", (500.0, 500.0, 510.0, 510.0)), "lies outside"),
    (lambda s: (s.joint_boxes.pop("SR"), s.joint_rois.pop("SR")), r"jsn_scores\['JSN_SR'\] has no joint box"),
    (lambda s: s.joint_rois.__setitem__("U", Roi(1, 1, 0, 3)), "non-positive size"),
    (lambda s: setattr(s, "spacing_mm", -1.0), "spacing_mm"),
])
def test_writer_rejects_bad_samples_before_writing(tmp_path, change, message):
    h = make_hand(1)
    change(h)
    with pytest.raises(ValueError, match=message):
        write(tmp_path, {"train": [h]})
    assert not any(p.is_file() and p.suffix == ".bmp" for p in tmp_path.rglob("*"))


# ---------------------------------------------------------------------------------------------------------------------
# Accepted input variants (as the real dataset may hold them)
# ---------------------------------------------------------------------------------------------------------------------

def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE (column-major runs, starting with background) of a 0/1 mask: test input only."""
    flat = mask.flatten(order="F").astype(np.int8)
    bounds = np.r_[0, np.flatnonzero(np.diff(flat)) + 1, flat.size]
    runs = np.diff(bounds).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def test_uncompressed_rle_helper_matches_pycocotools():
    m = np.zeros((5, 4), np.uint8)
    m[0, 0] = m[1:3, 2] = 1
    rle = mask_utils.frPyObjects(uncompressed_rle(m), 5, 4)
    np.testing.assert_array_equal(mask_utils.decode(rle), m)


def test_reader_accepts_benchmark_spellings_polygons_uncompressed_rle_pieces_and_ignored_categories(dataset, hands):
    h = hands[0]
    top = load_json(dataset, BONE)
    img_id = next(i["id"] for i in top["images"] if i["file_name"] == f"{h.stem}.bmp")
    hh, ww = h.shape
    cats = {c["name"]: c for c in top["categories"]}
    cats["Pisiform_Triquetrum"]["name"] = "Pisifrom_Triquetrum"  # the benchmark code's spelling
    cats["Trapezium"]["name"] = "Trapzium"
    top["categories"] += [{"id": 0, "name": "bones", "supercategory": "none"},  # Roboflow super-category
                          {"id": 90, "name": "Ring", "supercategory": "bone"}]
    next_id = max(a["id"] for a in top["annotations"]) + 1
    anns = [a for a in top["annotations"] if a["image_id"] != img_id]
    expected = {}
    # Pisiform_Triquetrum as a polygon (a triangle), Trapezium as uncompressed RLE, Radius as three pieces
    # (compressed RLE + polygon + uncompressed RLE), and a ring and a category-0 annotation to be skipped.
    tri = [[10.0, 10.0, 40.0, 12.0, 20.0, 40.0]]
    expected["Pisiform_Triquetrum"] = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(tri, hh, ww)))
    trap = np.zeros((hh, ww), np.uint8)
    trap[5:20, 50:70] = 1
    expected["Trapezium"] = trap
    piece1 = np.zeros((hh, ww), np.uint8)
    piece1[30:40, 5:15] = 1
    poly2 = [[60.0, 40.0, 75.0, 40.0, 75.0, 55.0, 60.0, 55.0]]
    piece3 = np.zeros((hh, ww), np.uint8)
    piece3[50:60, 20:30] = 1
    piece3[35:38, 10:25] = 1  # overlaps piece 1
    enc1 = mask_utils.encode(np.asfortranarray(piece1))
    expected["Radius"] = piece1 | mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly2, hh, ww))) | piece3
    segs = [("Pisifrom_Triquetrum", tri), ("Trapzium", uncompressed_rle(trap)),
            ("Radius", {"size": [hh, ww], "counts": enc1["counts"].decode()}), ("Radius", poly2),
            ("Radius", uncompressed_rle(piece3)), ("Ring", tri), ("bones", tri)]
    cat_id = {c["name"]: c["id"] for c in top["categories"]}
    for name, seg in segs:
        anns.append({"id": next_id, "image_id": img_id, "category_id": cat_id[name], "segmentation": seg,
                     "iscrowd": 0})
        next_id += 1
    top["annotations"] = anns
    dump_json(dataset, BONE, top)

    ds = RamH1200(dataset)
    got = ds.load(h.stem)
    assert set(got.bone_masks) == set(expected)
    for k, m in expected.items():
        np.testing.assert_array_equal(got.bone_masks[k], m.astype(bool), err_msg=k)
    assert validate(dataset) == []


def test_reader_meets_16_bit_png_and_palette_bmp_images(dataset, hands):
    h = hands[0]
    img16 = (np.arange(h.shape[0] * h.shape[1], dtype=np.uint16).reshape(h.shape) * 7)
    seg = dataset / SEG
    Image.fromarray(img16).save(seg / f"{h.stem}.png")
    (seg / f"{h.stem}.bmp").unlink()
    for rel in (BONE, BE, JOINTS):
        top = load_json(dataset, rel)
        for im in top["images"]:
            if im["file_name"] == f"{h.stem}.bmp":
                im["file_name"] = f"{h.stem}.png"
        dump_json(dataset, rel, top)
    got = RamH1200(dataset).load(h.stem)
    assert got.image.dtype == np.uint16
    np.testing.assert_array_equal(got.image, img16)

    pal = Image.fromarray(hands[1].image).convert("P")  # palette BMP with a non-grey palette order
    pal.save(seg / f"{hands[1].stem}.bmp")
    np.testing.assert_array_equal(RamH1200(dataset).load(hands[1].stem).image, hands[1].image)
    rgb = Image.fromarray(np.stack([hands[1].image] * 3, axis=-1))
    rgb.save(seg / f"{hands[1].stem}.bmp")
    np.testing.assert_array_equal(read_grayscale(seg / f"{hands[1].stem}.bmp"), hands[1].image)


def test_score_names_with_or_without_extension_and_reader_fields(dataset, hands):
    top = load_json(dataset, BE_SCORES)
    top = {k[:-4]: v for k, v in top.items()}  # "X_L" instead of "X_L.bmp"
    h = hands[0]
    top[h.stem]["BE_R"] = 3.0  # integral floats are accepted
    dump_json(dataset, BE_SCORES, top)
    ds = RamH1200(dataset)
    assert ds.scores(h.stem, kind="be") == {**h.be_scores, "BE_R": 3}
    info = ds.image_info(h.stem)
    assert (info.height, info.width, info.side, info.spacing_mm, info.split) == (64, 80, h.side, 0.1, "train")
    assert ds.load(0).stem == ds.stems()[0] and ds.load(-1).stem == ds.stems()[-1]
    assert ds.load(f"{h.stem}.bmp", "train").stem == h.stem
    s = ds.load(h.stem, bones=False)
    assert s.bone_masks == {} and set(s.erosion_masks) == set(h.erosion_masks)
    with pytest.raises(KeyError, match="no image 'nope_L'"):
        ds.load("nope_L")
    with pytest.raises(IndexError):
        ds.load(3)


def test_missing_spacing_and_custom_joints_path(tmp_path):
    h = make_hand(4, spacing=None)
    with DatasetWriter(tmp_path, joints_path="boxes/{split}.json") as w:
        w.add(h, "test")
    assert (tmp_path / "boxes" / "test.json").is_file()
    got = RamH1200(tmp_path, joints_path="boxes/{split}.json").load(h.stem)
    assert got.spacing_mm is None and got.joint_rois == h.joint_rois
    # Under the default path there is no joint file: boxes are unavailable, with a warning.
    ds = RamH1200(tmp_path)
    assert ds.load(h.stem).joint_boxes == {}
    assert any("no joint-detection file" in p.message for p in ds.warnings)
    with pytest.raises(ValueError, match=r"\{split\}"):
        RamH1200(tmp_path, joints_path="boxes.json")


def test_bbox_only_joint_annotations_give_angle_zero_rois(dataset, hands):
    top = load_json(dataset, JOINTS)
    for a in top["annotations"]:
        a.pop("rbox")
    dump_json(dataset, JOINTS, top)
    ds = RamH1200(dataset)
    rois = ds.joint_rois(hands[0].stem)
    assert set(rois) == set(hands[0].joint_boxes)
    for k, (x0, y0, x1, y1) in ds.joint_boxes(hands[0].stem).items():
        w, h = x1 - x0, y1 - y0
        assert rois[k].angle == 0.0 and rois[k].w == pytest.approx(w) and rois[k].h == pytest.approx(h)
        assert (rois[k].cx, rois[k].cy) == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2))


def test_metadata_xlsx_without_openpyxl_is_skipped_with_a_warning(dataset, hands, monkeypatch):
    (dataset / "Metadata.xlsx").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import fails as if not installed
    ds = RamH1200(dataset)
    assert ds.metadata(hands[0].stem) == {"isRA": "0", "Sex": "M"}  # from Metadata.csv
    assert any(p.file == "Metadata.xlsx" and "openpyxl is not installed" in p.message for p in ds.warnings)


def test_dataset_is_lazy(dataset, hands):
    (dataset / BONE).write_text("{broken")
    ds = RamH1200(dataset)  # opening reads no annotation file
    assert ds.splits == ("train", "val")
    assert ds.load(hands[2].stem, "val").stem == hands[2].stem  # another split is unaffected
    with pytest.raises(DatasetError, match="not valid JSON"):
        ds.stems("train")


# ---------------------------------------------------------------------------------------------------------------------
# Malformed input: one DatasetError each, naming file, record and problem
# ---------------------------------------------------------------------------------------------------------------------

def _first_image(root, rel=BONE):
    return load_json(root, rel)["images"][0]


def _edit(rel):
    def deco(fn):
        @functools.wraps(fn)
        def apply(root):
            top = load_json(root, rel)
            fn(top, root)
            dump_json(root, rel, top)
        return apply
    return deco


@_edit(BONE)
def _unknown_category(top, root):
    top["categories"][3]["name"] = "Femur"


@_edit(BONE)
def _rle_size(top, root):
    top["annotations"][0]["segmentation"]["size"] = [65, 80]


@_edit(BONE)
def _short_rle(top, root):
    top["annotations"][0]["segmentation"]["counts"] = "P2"


@_edit(BONE)
def _duplicate_image(top, root):
    top["images"].append({**top["images"][0], "id": 99})


@_edit(BONE)
def _duplicate_annotation_id(top, root):
    top["annotations"][1]["id"] = top["annotations"][0]["id"]


@_edit(BONE)
def _unknown_image_id(top, root):
    top["annotations"][0]["image_id"] = 12345


@_edit(BONE)
def _bad_spacing(top, root):
    top["images"][0]["pixel_spacing_mm"] = -0.1


@_edit(BONE)
def _bad_polygon(top, root):
    top["annotations"][0]["segmentation"] = [[1.0, 2.0, 3.0]]


@_edit(BE_SCORES)
def _score_out_of_range(top, root):
    next(iter(top.values()))["BE_R"] = 6


@_edit(JSN_SCORES)
def _unknown_score_key(top, root):
    next(iter(top.values()))["JSN_XYZ"] = 1


@_edit(JSN_SCORES)
def _be_key_in_jsn_file(top, root):
    next(iter(top.values()))["BE_R"] = 1


@_edit(BE_SCORES)
def _non_integer_score(top, root):
    next(iter(top.values()))["BE_U"] = 1.5


@_edit(JOINTS)
def _duplicate_joint_box(top, root):
    top["annotations"].append({**top["annotations"][0], "id": 999})


@_edit(JOINTS)
def _bad_rbox(top, root):
    top["annotations"][0]["rbox"] = [1, 2, 3]


def _duplicate_score_entry(root):
    text = (root / BE_SCORES).read_text()
    name = next(iter(json.loads(text)))
    # The same image twice in one JSON object: json.load alone would keep the last silently.
    (root / BE_SCORES).write_text(text.replace("{", '{"' + name + '": {},', 1))


def _duplicate_score_key(root):
    text = (root / BE_SCORES).read_text()
    top = json.loads(text)
    key = next(iter(next(iter(top.values()))))
    (root / BE_SCORES).write_text(text.replace(f'"{key}":', f'"{key}": 0, "{key}":', 1))


def _same_image_with_and_without_extension(root):
    top = load_json(root, BE_SCORES)
    k = next(iter(top))
    top[k[:-4]] = top[k]
    dump_json(root, BE_SCORES, top)


def _image_missing_on_disk(root):
    (root / SEG / _first_image(root)["file_name"]).unlink()


def _image_without_annotations(root):
    Image.fromarray(np.zeros((64, 80), np.uint8)).save(root / SEG / "EXTRA_P1_20200101_1_L.bmp")


def _image_size_mismatch(root):
    Image.fromarray(np.zeros((60, 80), np.uint8)).save(root / SEG / _first_image(root)["file_name"])


def _unparsable(root):
    (root / BE).write_text('{"images": [')


def _missing_be_json(root):
    (root / BE).unlink()


def _missing_score_json(root):
    (root / BE_SCORES).unlink()


def _not_a_coco_file(root):
    dump_json(root, BE, {"images": {}, "annotations": [], "categories": []})


def _no_side(root):
    name = _first_image(root)["file_name"]
    for rel in (BONE, BE, JOINTS):
        top = load_json(root, rel)
        top["images"][0]["file_name"] = "NOSIDE.bmp"
        dump_json(root, rel, top)
    os.replace(root / SEG / name, root / SEG / "NOSIDE.bmp")


def _metadata_duplicate(root):
    with open(root / "Metadata.csv", "a") as f:
        f.write(open(root / "Metadata.csv").read().splitlines()[1] + "\n")


# (mutation, file, record, message); `load` is called on the first train hand.
MALFORMED = [
    (_unknown_category, BONE, "category id 4 ('Femur')", "unknown bone class 'Femur'"),
    (_rle_size, BONE, "annotation id 1", "RLE size [65, 80] does not match the image size [64, 80]"),
    (_short_rle, BONE, "annotation id 1", "compressed RLE"),
    (_duplicate_image, BONE, "(id 99)", "is listed more than once"),
    (_duplicate_annotation_id, BONE, "annotation id 1", "annotation id appears more than once"),
    (_unknown_image_id, BONE, "annotation id 1", "refers to image id 12345"),
    (_bad_spacing, BONE, "image '", "'pixel_spacing_mm' must be a positive number"),
    (_bad_polygon, BONE, "annotation id 1", "polygon 0 must hold x, y pairs"),
    (_score_out_of_range, BE_SCORES, "key 'BE_R'", "score 6 is outside 0..5"),
    (_unknown_score_key, JSN_SCORES, "key 'JSN_XYZ'", "unknown score key"),
    (_be_key_in_jsn_file, JSN_SCORES, "key 'BE_R'", "a BE key in a JSN score file"),
    (_non_integer_score, BE_SCORES, "key 'BE_U'", "score must be an integer; got 1.5"),
    (_duplicate_score_entry, BE_SCORES, "image '", "image entry appears more than once"),
    (_duplicate_score_key, BE_SCORES, "key 'BE_", "score key appears more than once"),
    (_same_image_with_and_without_extension, BE_SCORES, "image '", "same image as entry"),
    (_duplicate_joint_box, JOINTS, "annotation id 999", "second box for ROI"),
    (_bad_rbox, JOINTS, "annotation id 1", "'rbox' must be [cx, cy, w, h, angle]"),
    (_image_missing_on_disk, BONE, "image '", "is missing"),
    (_image_without_annotations, BONE, "image 'EXTRA_P1_20200101_1_L.bmp'", "has no record here"),
    (_image_size_mismatch, SEG, "image '", "file is 60 x 80 (height x width) but the COCO record says 64 x 80"),
    (_unparsable, BE, None, "is not valid JSON"),
    (_missing_be_json, BE, None, "file is missing"),
    (_missing_score_json, BE_SCORES, None, "file is missing"),
    (_not_a_coco_file, BE, None, "'images' must be a list"),
    (_no_side, BONE, "image 'NOSIDE'", "does not end in _L or _R"),
    (_metadata_duplicate, "Metadata.csv", "row ", "image stem listed more than once"),
]


@pytest.mark.parametrize("mutate, file, record, message", MALFORMED, ids=[m[0].__name__.strip("_") for m in MALFORMED])
def test_malformed_input_raises_dataset_error(dataset, mutate, file, record, message):
    mutate(dataset)
    ds = RamH1200(dataset)
    with pytest.raises(DatasetError) as ei:
        for stem in ds.stems("train"):
            ds.load(stem, "train")
    err = ei.value
    assert file in err.file, str(err)
    if record is not None:
        assert record in (err.record or ""), str(err)
    assert message in str(err)
    assert str(err).startswith(err.file)  # the message names the file first
    # validate() finds the same problem (as an error).
    found = [p for p in validate(dataset) if p.severity == "error" and message in p.message]
    assert found and file in found[0].file


def test_a_scoring_only_dataset_serves_scores_and_crops(dataset, hands):
    import shutil

    shutil.rmtree(dataset / "Segmentation")
    ds = RamH1200(dataset)
    assert ds.stems("train") == sorted(h.stem for h in hands[:2])
    assert len(ds.score_items("train", "jsn")) == sum(len(h.jsn_scores) for h in hands[:2])
    assert ds.joint_rois(hands[0].stem) == hands[0].joint_rois
    with pytest.raises(DatasetError, match="split has no segmentation annotations"):
        ds.load(hands[0].stem)
    assert [p for p in validate(dataset) if p.severity == "error"] == []


def test_missing_root_and_no_split(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder does not exist"):
        RamH1200(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no split found"):
        RamH1200(tmp_path)
    (tmp_path / "Segmentation" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match="split 'val'.*split not found"):
        RamH1200(tmp_path, splits=["val"])
    with pytest.raises(ValueError, match="split must be one of"):
        RamH1200(tmp_path, splits=["valid"])


def test_validate_collects_every_problem_at_once(dataset):
    _score_out_of_range(dataset)
    _rle_size(dataset)
    _short_rle_second = _edit(BONE)(lambda top, root: top["annotations"][5]["segmentation"].__setitem__("counts",
                                                                                                       "0"))
    _short_rle_second(dataset)
    _image_without_annotations(dataset)
    _duplicate_joint_box(dataset)
    (dataset / "Segmentation" / "valid").mkdir()
    problems = validate(dataset)
    errors = [p for p in problems if p.severity == "error"]
    messages = [str(p) for p in errors]
    for needle in ("score 6 is outside 0..5", "RLE size [65, 80]", "annotation id 6", "second box for ROI",
                   "EXTRA_P1_20200101_1_L.bmp"):
        assert any(needle in m for m in messages), (needle, messages)
    # Both segmentation files report the unlisted image, and the extra folder is a warning.
    assert sum("EXTRA_P1" in m for m in messages) == 2
    assert any(p.severity == "warning" and p.file == "Segmentation/valid" for p in problems)
    # Same report with several worker processes.
    assert validate(dataset, workers=2) == problems


def test_layout_paths(tmp_path):
    lay = Layout.of(tmp_path)
    assert lay.rel(lay.score_json("jsn", "val")) == "SvdH_Scoring/SvdH_JSN_Scoring/val/_annotation_jsn_scores.json"
    assert lay.rel(lay.crop_path("be", "test", "X_L", "MCP-I")) == "SvdH_Scoring/SvdH_BE_Scoring/test/X_L/MCP-I.bmp"
    assert lay.rel(lay.joints_json("train")) == JOINTS
