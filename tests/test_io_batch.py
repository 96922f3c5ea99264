"""ramh_rt.io.batch: images decoded ahead on a background thread, in order, with per-image arguments and per-image
failures (no model needed: the decoder is the real load_image)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from ramh_rt.errors import ImageLoadError
from ramh_rt.io import LoadedImage, load_image, with_overrides
from ramh_rt.io.batch import DecodeAhead, PerImage, source_name


def _load(item, spacing, side):
    if isinstance(item, LoadedImage):
        return with_overrides(item, spacing_mm=spacing, side=side)
    return load_image(item, spacing_mm=spacing, side=side)


def _image(value: int) -> np.ndarray:
    return np.full((40, 48), value, np.uint8)


def _decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ramh-decode")]


def test_results_in_input_order_with_names_and_per_image_failures(tmp_path):
    png = tmp_path / "hand_L.png"
    Image.fromarray(_image(7)).save(png)
    loaded = load_image(_image(9))
    images = [_image(1), str(png), png.read_bytes(), loaded, str(tmp_path / "missing.png"), _image(2)]
    out = list(DecodeAhead(images, _load, prefetch=2))

    assert [name for name, _, _ in out] == ["<array>", str(png), "<bytes>", "<array>",
                                            str(tmp_path / "missing.png"), "<array>"]
    assert [int(v.pixels[0, 0]) if v is not None else None for _, v, _ in out] == [1, 7, 7, 9, None, 2]
    assert out[1][1].side == "L" and out[1][1].side_source == "filename"
    assert out[3][1] is loaded  # no override given: the LoadedImage itself
    name, value, error = out[4]
    assert value is None and isinstance(error, ImageLoadError) and "file not found" in str(error)
    assert all(e is None for i, (_, _, e) in enumerate(out) if i != 4)


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_reads_exactly_prefetch_plus_one_ahead(prefetch):
    taken: list[int] = []

    def source():
        for i in range(8):
            taken.append(i)
            yield _image(i)

    batch = DecodeAhead(source(), _load, prefetch=prefetch)
    assert batch.count is None
    for i, (_, value, error) in enumerate(batch):
        assert error is None and int(value.pixels[0, 0]) == i
        # the image yielded, plus up to prefetch + 1 queued behind it (decoding while this one is used)
        assert len(taken) == min(8, i + prefetch + 2)


def test_per_image_and_shared_arguments_reach_the_decoder():
    seen = []

    def decode(item, spacing, side):
        seen.append((spacing, side))
        return _load(item, spacing, side)

    out = list(DecodeAhead([_image(1), _image(2), _image(3)], decode, spacing_mm=[0.1, None, np.float32(0.2)],
                           side="left"))
    assert seen == [(0.1, "left"), (None, "left"), (np.float32(0.2), "left")]
    assert [(v.spacing_mm, v.spacing_source, v.side) for _, v, _ in out] == [
        (0.1, "user", "L"), (None, None, "L"), (pytest.approx(0.2), "user", "L")]


def test_arguments_are_checked_before_any_image_is_taken():
    taken: list[int] = []

    def source():
        taken.append(0)
        yield _image(0)

    with pytest.raises(ValueError, match="prefetch must be an integer >= 0, got -1"):
        DecodeAhead(source(), _load, prefetch=-1)
    with pytest.raises(ValueError, match="prefetch must be an integer >= 0, got True"):
        DecodeAhead(source(), _load, prefetch=True)
    for one_image in ("hand.png", b"\x89PNG", _image(0), load_image(_image(0))):
        with pytest.raises(TypeError, match="images must be an iterable of images"):
            DecodeAhead(one_image, _load)
    with pytest.raises(ValueError, match=r"spacing_mm must be one value or one per image \(2\), got 3"):
        DecodeAhead([_image(0)] * 2, _load, spacing_mm=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match=r"spacing_mm\[1\]: spacing_mm must be a positive finite number"):
        DecodeAhead(source(), _load, spacing_mm=[0.1, -1.0])
    with pytest.raises(ValueError, match="side: "):
        DecodeAhead(source(), _load, side="up")
    with pytest.raises(ValueError, match="one value or a sequence"):
        DecodeAhead(source(), _load, spacing_mm=object())
    assert taken == []


def test_unsized_input_and_per_image_values_of_another_length():
    def source(n):
        for i in range(n):
            yield _image(i)

    results = []
    with pytest.raises(ValueError, match="spacing_mm has 2 values but there are more images"):
        for _, value, _ in DecodeAhead(source(3), _load, spacing_mm=[0.1, 0.2]):
            results.append(value.spacing_mm)
    assert results == [0.1, 0.2]  # the images that had a value were decoded first
    with pytest.raises(ValueError, match=r"side has more values than there are images \(2\)"):
        for _ in DecodeAhead(source(2), _load, side=["L", "R", "L"]):
            pass


def test_a_failing_source_finishes_what_was_taken_then_raises():
    def source():
        yield _image(1)
        yield _image(2)
        raise OSError("the archive went away")

    got = []
    with pytest.raises(OSError, match="the archive went away"):
        for _, value, _ in DecodeAhead(source(), _load):
            got.append(int(value.pixels[0, 0]))
    assert got == [1, 2]


def test_iterated_once_and_closing_stops_the_decoder_thread():
    batch = DecodeAhead([_image(i) for i in range(6)], _load, prefetch=2)
    it = iter(batch)
    next(it)
    assert _decoder_threads()
    it.close()
    assert not _decoder_threads()
    with pytest.raises(RuntimeError, match="iterated once"):
        iter(batch)
    assert list(DecodeAhead([], _load)) == []


def test_closing_cancels_the_decodes_queued_ahead():
    started = threading.Event()
    decoded = []

    def slow(item, spacing, side):
        decoded.append(item)
        if item == 1:  # the second image holds the decoder (1.5 s, far longer than the close takes
            # to cancel the queue) while the consumer closes the batch
            started.set()
            threading.Event().wait(1.5)
        return item

    it = iter(DecodeAhead(list(range(6)), slow, prefetch=3))
    assert next(it)[1] == 0
    assert started.wait(5)
    it.close()  # cancels the queued images at once, then waits for image 1
    assert not _decoder_threads()
    assert decoded == [0, 1]  # images 2.. were queued behind 1 and cancelled, never decoded


def test_per_image_and_source_name_helpers():
    per = PerImage([0.1, None], 2, "spacing_mm", lambda v: v)
    assert (per[0], per[1], per.has_value(1), per.has_value(2), per.left_over(1), per.left_over(2)) == (
        0.1, None, True, False, True, False)
    shared = PerImage(np.float64(0.3), None, "spacing_mm", lambda v: v)
    assert shared.shared and shared[5] == 0.3 and shared.has_value(10**6) and not shared.left_over(0)
    assert PerImage(np.array(0.3), 4, "spacing_mm", lambda v: v).shared
    assert source_name(b"x") == "<bytes>" and source_name(bytearray(b"x")) == "<bytearray>"
