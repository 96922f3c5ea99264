"""benchmarks/qc_phantoms.py: a hand film is scored against its ground truth check by check.

The results here are plain objects shaped like the SDK's (``meta.hand_box``, ``meta.orientation``, ``qc.status``), so
that each check can be made to pass or fail on its own; the variants are real. The benchmark itself runs the SDK.
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("ramh_train.phantoms", reason="the phantom generator comes with the train extra")

from ramh_train.phantoms import PhantomConfig  # noqa: E402
from ramh_train.phantoms.variants import make_variant  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import qc_phantoms  # noqa: E402

SMALL = PhantomConfig(spacing_mm=(0.5, 0.5))


def _result(truth, *, rotation=None, mirrored=None, fov=None, box=None, status="ok", side=None):
    orientation = {"rotation_deg": truth.rotation_deg if rotation is None else rotation,
                   "mirrored": truth.mirrored if mirrored is None else mirrored}
    meta = SimpleNamespace(hand_box=box or truth.box, orientation=orientation, side=side or truth.side,
                           field_of_view=fov or truth.field_of_view)
    return SimpleNamespace(meta=meta, qc=SimpleNamespace(status=status))


def test_right_answers_pass_every_check_and_each_wrong_answer_fails_its_own():
    v = make_variant("two_hands", 3, SMALL, masks=False)
    a, b = v.hands
    good = [_result(a), _result(b)]
    assert all(qc_phantoms.check_hand_film(v, "results", good, True).values())
    wrong_rot = [_result(a), _result(b, rotation=90)]
    c = qc_phantoms.check_hand_film(v, "results", wrong_rot, True)
    assert c["rotation"] is False and c["box"] and c["mirrored"] and c["field_of_view"]
    swapped = [_result(b), _result(a)]          # not left to right: the boxes do not match
    assert qc_phantoms.check_hand_film(v, "results", swapped, True)["box"] is False
    one = qc_phantoms.check_hand_film(v, "results", [_result(a)], True)
    assert one["count"] is False and one["box"] is False
    assert not any(qc_phantoms.check_hand_film(v, "undocumented_exception", [], True).values())
    # A failed hand (the SDK's AnalysisError in its place) fails the per-hand checks; it is not "not available".
    from ramh_rt.pipeline import AnalysisError

    failed = [_result(a), AnalysisError("film [hand 2 of 2]", "NotAHandError: no hand", ValueError())]
    c = qc_phantoms.check_hand_film(v, "results", failed, True)
    assert c["count"] is True and c["box"] is False and c["rotation"] is False and c["qc_ok"] is False


def test_missing_api_parts_are_not_available_rather_than_passed():
    v = make_variant("rot90", 3, SMALL, masks=False)
    today = SimpleNamespace(meta=SimpleNamespace(side=v.hands[0].side))   # no hand_box, orientation, qc
    c = qc_phantoms.check_hand_film(v, "results", [today], False)
    assert c["count"] is None and c["box"] is None and c["rotation"] is None and c["qc_ok"] is None
    assert c["side"] is True
    # a two-hand film answered with a single analysis by plain analyze() is wrong, not unknown
    v2 = make_variant("composite", 3, SMALL, masks=False)
    c2 = qc_phantoms.check_hand_film(v2, "results", [today], False)
    assert c2["count"] is None and c2["box"] is False and c2["field_of_view"] is False
