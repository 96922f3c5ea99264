"""Anatomy and scoring facts: the single source of truth for bone classes and SvdH areas.

Everything that needs a list of bones, joints, score keys, RA2-DREAM columns, maxima or severity classes takes it
from here; no other module repeats these lists. Facts follow RAM-H1200 (its 30-class benchmark order and ROI stems)
and the Sharp/van der Heijde (SvdH) method for hands (a hand has 16 erosion and 15 joint-space-narrowing areas, scored
0-5 and 0-4); docs/architecture.md shows where each is used.

Naming:
    * bone classes are RAM-H1200 channel names (``"MC2"``, ``"Pisiform_Triquetrum"``...), side-agnostic: a left
      and a right hand use the same names, laterality is carried separately (:data:`SIDES`);
    * SvdH areas are identified by their RAM-H1200 ROI *stem* (``"MCP-I"``, ``"R"``, ``"STT"``...); score keys are
      ``"BE_" + stem`` and ``"JSN_" + stem``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

ANATOMY_VERSION = "ramh1200-anatomy-1"

Side = Literal["L", "R"]
#: Fields of view of a hand radiograph: ``"hand"`` (fingertips to the distal radius/ulna), ``"wrist"`` (carpus,
#: distal radius/ulna, metacarpal bases), ``"fingers"`` (phalanges and metacarpal heads), ``"partial"`` (anything else:
#: a hand cut by the film's border...).
FIELDS_OF_VIEW: tuple[str, ...] = ("hand", "wrist", "fingers", "partial")

SIDES: tuple[str, str] = ("L", "R")
SIDE_NAMES = {"L": "left", "R": "right"}

# ---------------------------------------------------------------------------------------------------------------------
# Bone classes
# ---------------------------------------------------------------------------------------------------------------------

BoneGroup = Literal["distal_phalanx", "middle_phalanx", "proximal_phalanx", "metacarpal", "carpal", "forearm",
                    "sesamoid", "soft_tissue"]


@dataclass(frozen=True)
class BoneClass:
    """One channel of the 30-class RAM-H1200 multilabel segmentation.

    Attributes:
        index: channel index in the benchmark order.
        name: RAM-H1200 class name.
        group: anatomical group.
        digit: 1 (thumb) .. 5 (small finger) for phalanges and metacarpals, else None.
        is_bone: True for the 28 bones; False for Sesamoid (small accessory bones, several per hand) and SoftTissue.
        multi_instance: True where a hand may hold several separate instances (Sesamoid).
        is_region: True for a region rather than a bone (SoftTissue).
        display: human-readable name.
    """

    index: int
    name: str
    group: BoneGroup
    digit: int | None
    is_bone: bool
    multi_instance: bool
    is_region: bool
    display: str


def _bone(index: int, name: str, group: BoneGroup, digit: int | None, display: str) -> BoneClass:
    return BoneClass(index=index, name=name, group=group, digit=digit,
                     is_bone=group not in ("sesamoid", "soft_tissue"),
                     multi_instance=group == "sesamoid", is_region=group == "soft_tissue", display=display)


_FINGER_WORD = {1: "thumb", 2: "index", 3: "middle", 4: "ring", 5: "small"}

BONE_CLASSES: tuple[BoneClass, ...] = (
    _bone(0, "Capitate", "carpal", None, "capitate"),
    *(_bone(i, f"DP{i}", "distal_phalanx", i, f"distal phalanx {i} ({_FINGER_WORD[i]})") for i in range(1, 6)),
    _bone(6, "Hamate", "carpal", None, "hamate"),
    _bone(7, "Lunate", "carpal", None, "lunate"),
    *(_bone(7 + i, f"MC{i}", "metacarpal", i, f"metacarpal {i} ({_FINGER_WORD[i]})") for i in range(1, 6)),
    *(_bone(11 + i, f"MP{i}", "middle_phalanx", i, f"middle phalanx {i} ({_FINGER_WORD[i]})") for i in range(2, 6)),
    *(_bone(16 + i, f"PP{i}", "proximal_phalanx", i, f"proximal phalanx {i} ({_FINGER_WORD[i]})")
      for i in range(1, 6)),
    _bone(22, "Pisiform_Triquetrum", "carpal", None, "pisiform and triquetrum"),
    _bone(23, "Radius", "forearm", None, "distal radius"),
    _bone(24, "Scaphoid", "carpal", None, "scaphoid"),
    _bone(25, "Sesamoid", "sesamoid", None, "sesamoid bones"),
    _bone(26, "SoftTissue", "soft_tissue", None, "soft tissue"),
    _bone(27, "Trapezium", "carpal", None, "trapezium"),
    _bone(28, "Trapezoid", "carpal", None, "trapezoid"),
    _bone(29, "Ulna", "forearm", None, "distal ulna"),
)

BONE_NAMES: tuple[str, ...] = tuple(b.name for b in BONE_CLASSES)
NUM_BONE_CLASSES = len(BONE_CLASSES)  # 30
BONE_INDEX: dict[str, int] = {b.name: b.index for b in BONE_CLASSES}
#: The 28 bones of one hand and wrist (pisiform and triquetrum counted as one class, as in RAM-H1200).
BONES: tuple[str, ...] = tuple(b.name for b in BONE_CLASSES if b.is_bone)

# Spellings met in RAM-H1200 files and code, mapped to the canonical class names above.
BONE_ALIASES: dict[str, str] = {
    "Pisifrom_Triquetrum": "Pisiform_Triquetrum",  # the benchmark code's spelling
    "Pisiform&Triquetrum": "Pisiform_Triquetrum",
    "Pisifrom&Triquetrum": "Pisiform_Triquetrum",
    "Trapzium": "Trapezium",
    "Trapzoid": "Trapezoid",
    "DistalRadius": "Radius",
    "DistalUlna": "Ulna",
    "Soft Tissue": "SoftTissue",
}

#: COCO categories that are annotated in RAM-H1200 but are not anatomy (skipped when reading masks).
IGNORED_CATEGORIES: frozenset[str] = frozenset({"Ring", "Metal Implant", "Background", "background",
                                                 "Intravenous cannula"})

#: The 14 adjacent-bone pairs whose overlap regions the RAM-H1200 benchmark scores (DSC/NSD on the overlap).
OVERLAP_PAIRS: tuple[tuple[str, str], ...] = (
    ("Radius", "Scaphoid"), ("Radius", "Lunate"), ("Scaphoid", "Trapezium"), ("Capitate", "Scaphoid"),
    ("Trapezium", "MC1"), ("Capitate", "MC3"), ("Hamate", "MC4"), ("Lunate", "Scaphoid"),
    ("Trapezium", "Trapezoid"), ("Capitate", "Trapezoid"), ("Hamate", "MC5"), ("Trapezium", "MC2"),
    ("Trapezoid", "MC2"), ("MC2", "MC3"),
)


def canonical_bone_name(name: str) -> str:
    """Canonical RAM-H1200 class name for ``name`` (accepts the known alternative spellings).

    Raises:
        KeyError: ``name`` is no bone class nor a known alias.
    """
    name = BONE_ALIASES.get(name, name)
    if name not in BONE_INDEX:
        raise KeyError(f"unknown bone class {name!r}; known: {', '.join(BONE_NAMES)}")
    return name


def bone(name: str) -> BoneClass:
    """The :class:`BoneClass` of a class name or alias."""
    return BONE_CLASSES[BONE_INDEX[canonical_bone_name(name)]]


# ---------------------------------------------------------------------------------------------------------------------
# Erosion labels
# ---------------------------------------------------------------------------------------------------------------------

#: RAM-H1200 erosion categories; their position + 1 is the label in a training label map (0 = background).
EROSION_CATEGORIES: tuple[str, ...] = ("SvdH-BE-90", "SvdH-BE-50", "Non-SvdH-BE")
EROSION_LABEL: dict[str, int] = {name: i + 1 for i, name in enumerate(EROSION_CATEGORIES)}

# ---------------------------------------------------------------------------------------------------------------------
# SvdH areas
# ---------------------------------------------------------------------------------------------------------------------

BE_MAX = 5   # erosion score per area (hands)
JSN_MAX = 4  # joint-space narrowing score per area

_RAY_ORDER = ("metacarpal", "proximal_phalanx", "middle_phalanx", "distal_phalanx")
#: Each ray's bones from proximal to distal, by digit: 1 (thumb) MC1, PP1, DP1; 2-5 MCk, PPk, MPk, DPk.
RAYS: dict[int, tuple[str, ...]] = {
    d: tuple(b.name for b in sorted((b for b in BONE_CLASSES if b.digit == d and b.group in _RAY_ORDER),
                                    key=lambda b: _RAY_ORDER.index(b.group)))
    for d in range(1, 6)}
#: The metacarpals MC1..MC5 and the phalanges of each kind, by digit (middle phalanges: digits 2-5).
METACARPALS: tuple[str, ...] = tuple(RAYS[d][0] for d in range(1, 6))
PROXIMAL_PHALANGES: tuple[str, ...] = tuple(RAYS[d][1] for d in range(1, 6))
MIDDLE_PHALANGES: tuple[str, ...] = tuple(RAYS[d][2] for d in range(2, 6))
DISTAL_PHALANGES: tuple[str, ...] = tuple(RAYS[d][-1] for d in range(1, 6))

FINGER_SUFFIX: dict[int, str] = {1: "T", 2: "I", 3: "M", 4: "R", 5: "S"}


@dataclass(frozen=True)
class Joint:
    """An articulation between a proximal and a distal bone group: the joint space the phantoms place, the ROI rules
    measure and the erosions of finger joints sit on.

    Attributes:
        name: the SvdH area stem where the joint is an SvdH area (``"MCP-I"``, ``"SR"``...); ``"CMC-I"`` (CMC2) and
            ``"DIP-<finger suffix>"`` otherwise.
        proximal: bone classes on the proximal side.
        distal: bone classes on the distal side.
    """

    name: str
    proximal: tuple[str, ...]
    distal: tuple[str, ...]


#: Every articulation of the hand model by name: radiocarpal, midcarpal, STT, the five CMC joints, then the finger
#: joints (MCP-T, IP, MCP-I..S, PIP-I..S, DIP-I..S). The single source of each joint's proximal and distal bones.
JOINTS: dict[str, Joint] = {j.name: j for j in (
    Joint("SR", ("Radius",), ("Scaphoid", "Lunate")),
    Joint("SC", ("Lunate",), ("Capitate",)),
    Joint("STT", ("Scaphoid",), ("Trapezium", "Trapezoid")),
    Joint("CMC-T", ("Trapezium",), ("MC1",)),
    Joint("CMC-I", ("Trapezoid",), ("MC2",)),
    Joint("CMC-M", ("Capitate",), ("MC3",)),
    Joint("CMC-R", ("Hamate",), ("MC4",)),
    Joint("CMC-S", ("Hamate",), ("MC5",)),
    Joint("MCP-T", ("MC1",), ("PP1",)),
    Joint("IP", ("PP1",), ("DP1",)),
    *(Joint(f"MCP-{FINGER_SUFFIX[d]}", (f"MC{d}",), (f"PP{d}",)) for d in range(2, 6)),
    *(Joint(f"PIP-{FINGER_SUFFIX[d]}", (f"PP{d}",), (f"MP{d}",)) for d in range(2, 6)),
    *(Joint(f"DIP-{FINGER_SUFFIX[d]}", (f"MP{d}",), (f"DP{d}",)) for d in range(2, 6)),
)}


def joint(name: str) -> Joint:
    """The :class:`Joint` of a joint name (:data:`JOINTS`).

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    return _lookup(JOINTS, name, "joint")


def _lookup(table: dict, key: str, what: str):
    try:
        return table[key]
    except KeyError:
        raise KeyError(f"unknown {what} {key!r}; known: {', '.join(table)}") from None


def _joint_bones(name: str) -> tuple[str, ...]:
    j = JOINTS[name]
    return j.proximal + j.distal


@dataclass(frozen=True)
class SvdHArea:
    """One Sharp/van der Heijde area of a hand, identified by its RAM-H1200 ROI stem.

    Attributes:
        stem: RAM-H1200 ROI crop stem (``"MCP-I"``); score keys are ``"BE_"+stem`` / ``"JSN_"+stem``.
        name: conventional short name (``"MCP2"``, ``"CMC1"``, ``"radiocarpal"``...).
        display: human-readable name.
        region: ``"finger"`` or ``"wrist"``.
        digit: 1..5 for finger joints and CMC joints, else None.
        be: scored for bone erosion (0..5).
        jsn: scored for joint-space narrowing (0..4).
        anchors: the bones that locate the area. Joint areas list their :data:`JOINTS` entry's proximal then distal
            bones (the capitate-scaphoid-lunate area adds the scaphoid to the midcarpal joint's); single-bone
            erosion areas list that bone; multi-bone wrist areas list their bones.
        ra2_be: RA2-DREAM erosion column without the ``LH_``/``RH_`` prefix, or None.
        ra2_jsn: RA2-DREAM narrowing column without the prefix, or None.
    """

    stem: str
    name: str
    display: str
    region: Literal["finger", "wrist"]
    digit: int | None
    be: bool
    jsn: bool
    anchors: tuple[str, ...]
    ra2_be: str | None
    ra2_jsn: str | None

    @property
    def be_key(self) -> str | None:
        return f"BE_{self.stem}" if self.be else None

    @property
    def jsn_key(self) -> str | None:
        return f"JSN_{self.stem}" if self.jsn else None


def _finger_areas() -> list[SvdHArea]:
    out = []
    for d in range(1, 6):
        s = FINGER_SUFFIX[d]
        out.append(SvdHArea(f"MCP-{s}", f"MCP{d}", f"metacarpophalangeal joint {d} ({_FINGER_WORD[d]})", "finger",
                            d, True, True, _joint_bones(f"MCP-{s}"), f"mcp_E__{d}", f"mcp_J__{d}"))
    out.append(SvdHArea("IP", "IP1", "interphalangeal joint of the thumb", "finger", 1, True, False,
                        _joint_bones("IP"), "mcp_E__ip", None))
    for d in range(2, 6):
        s = FINGER_SUFFIX[d]
        out.append(SvdHArea(f"PIP-{s}", f"PIP{d}", f"proximal interphalangeal joint {d} ({_FINGER_WORD[d]})",
                            "finger", d, True, True, _joint_bones(f"PIP-{s}"), f"pip_E__{d}", f"pip_J__{d}"))
    return out


_WRIST_AREAS = [
    SvdHArea("CMC-T", "CMC1", "first carpometacarpal joint", "wrist", 1, True, False, _joint_bones("CMC-T"),
             "wrist_E__mc1", None),
    SvdHArea("CMC-M", "CMC3", "third carpometacarpal joint", "wrist", 3, False, True, _joint_bones("CMC-M"),
             None, "wrist_J__cmc3"),
    SvdHArea("CMC-R", "CMC4", "fourth carpometacarpal joint", "wrist", 4, False, True, _joint_bones("CMC-R"),
             None, "wrist_J__cmc4"),
    SvdHArea("CMC-S", "CMC5", "fifth carpometacarpal joint", "wrist", 5, False, True, _joint_bones("CMC-S"),
             None, "wrist_J__cmc5"),
    SvdHArea("Tm", "trapezium-trapezoid", "trapezium and trapezoid (multangulars)", "wrist", None, True, False,
             ("Trapezium", "Trapezoid"), "wrist_E__mul", None),
    SvdHArea("STT", "scaphoid-trapezium-trapezoid", "scaphoid-trapezium-trapezoid joint (multangular-navicular)",
             "wrist", None, False, True, _joint_bones("STT"), None, "wrist_J__mna"),
    SvdHArea("S", "scaphoid", "scaphoid (navicular)", "wrist", None, True, False, ("Scaphoid",),
             "wrist_E__nav", None),
    SvdHArea("SC", "capitate-scaphoid-lunate", "capitate-scaphoid-lunate joint", "wrist", None, False, True,
             ("Scaphoid", "Capitate", "Lunate"), None, "wrist_J__capnlun"),
    SvdHArea("L", "lunate", "lunate", "wrist", None, True, False, ("Lunate",), "wrist_E__lunate", None),
    SvdHArea("SR", "radiocarpal", "radiocarpal joint (scaphoid-radius)", "wrist", None, False, True,
             _joint_bones("SR"), None, "wrist_J__radcar"),
    SvdHArea("R", "distal radius", "distal radius", "wrist", None, True, False, ("Radius",), "wrist_E__radius", None),
    SvdHArea("U", "distal ulna", "distal ulna", "wrist", None, True, False, ("Ulna",), "wrist_E__ulna", None),
]

#: The 22 distinct SvdH areas of one hand (finger joints distal to proximal, then the wrist), each once.
SVDH_AREAS: tuple[SvdHArea, ...] = tuple(_finger_areas() + _WRIST_AREAS)
AREA_BY_STEM: dict[str, SvdHArea] = {a.stem: a for a in SVDH_AREAS}
AREA_STEMS: tuple[str, ...] = tuple(a.stem for a in SVDH_AREAS)
AREA_INDEX: dict[str, int] = {s: i for i, s in enumerate(AREA_STEMS)}

#: The 16 erosion areas and the 15 narrowing areas (stems), in :data:`SVDH_AREAS` order.
BE_STEMS: tuple[str, ...] = tuple(a.stem for a in SVDH_AREAS if a.be)
JSN_STEMS: tuple[str, ...] = tuple(a.stem for a in SVDH_AREAS if a.jsn)
BE_KEYS: tuple[str, ...] = tuple(f"BE_{s}" for s in BE_STEMS)
JSN_KEYS: tuple[str, ...] = tuple(f"JSN_{s}" for s in JSN_STEMS)

BE_MAX_PER_HAND = BE_MAX * len(BE_STEMS)     # 80
JSN_MAX_PER_HAND = JSN_MAX * len(JSN_STEMS)  # 60
SVDH_MAX_PER_HAND = BE_MAX_PER_HAND + JSN_MAX_PER_HAND  # 140
SVDH_MAX_BOTH_HANDS = 2 * SVDH_MAX_PER_HAND  # 280

#: Grade descriptions (SvdH for hands).
BE_GRADES: dict[int, str] = {0: "no erosion", 1: "discrete erosion", 2: "erosion of up to half the articular surface",
                             3: "erosion of more than half the articular surface", 4: "extensive erosion",
                             5: "complete collapse of the bone area"}
JSN_GRADES: dict[int, str] = {0: "normal", 1: "focal or doubtful narrowing", 2: "generalised, less than 50% of the "
                              "original joint space", 3: "generalised, more than 50% of the original joint space or "
                              "subluxation", 4: "ankylosis or complete luxation"}


def area(stem: str) -> SvdHArea:
    """The :class:`SvdHArea` of a RAM-H1200 ROI stem.

    Raises:
        KeyError: unknown stem (the message lists the known ones).
    """
    return _lookup(AREA_BY_STEM, stem, "SvdH area stem")


def score_range(key: str) -> tuple[int, int]:
    """Inclusive (min, max) of a score key such as ``"BE_MCP-I"`` or ``"JSN_SR"``.

    Raises:
        KeyError: the key names no scored area of that kind.
    """
    kind, _, stem = key.partition("_")
    a = area(stem)
    if kind == "BE" and a.be:
        return 0, BE_MAX
    if kind == "JSN" and a.jsn:
        return 0, JSN_MAX
    raise KeyError(f"{key!r} is not a score key (expected one of BE_{{{','.join(BE_STEMS)}}} or "
                   f"JSN_{{{','.join(JSN_STEMS)}}})")


def ra2_columns(side: str) -> list[str]:
    """RA2-DREAM CSV columns of one hand (``LH_`` or ``RH_`` prefixed): erosion columns then narrowing columns.

    Order: ``mcp_E__ip``, ``pip_E__2..5``, ``mcp_E__1..5``, ``wrist_E__mc1|mul|nav|lunate|radius|ulna``, then
    ``pip_J__2..5``, ``mcp_J__1..5``, ``wrist_J__cmc3|cmc4|cmc5|mna|capnlun|radcar``.
    """
    prefix = {"L": "LH_", "R": "RH_"}[_check_side(side)]
    be = ["mcp_E__ip"] + [f"pip_E__{d}" for d in range(2, 6)] + [f"mcp_E__{d}" for d in range(1, 6)] + \
        [f"wrist_E__{w}" for w in ("mc1", "mul", "nav", "lunate", "radius", "ulna")]
    jsn = [f"pip_J__{d}" for d in range(2, 6)] + [f"mcp_J__{d}" for d in range(1, 6)] + \
        [f"wrist_J__{w}" for w in ("cmc3", "cmc4", "cmc5", "mna", "capnlun", "radcar")]
    return [prefix + c for c in be + jsn]


#: RA2-DREAM column (without prefix) -> RAM-H1200 score key.
RA2_TO_KEY: dict[str, str] = {**{a.ra2_be: f"BE_{a.stem}" for a in SVDH_AREAS if a.be},
                              **{a.ra2_jsn: f"JSN_{a.stem}" for a in SVDH_AREAS if a.jsn}}


def _check_side(side: str) -> str:
    s = str(side).upper()[:1]
    if s not in SIDES:
        raise ValueError(f"side must be 'L' or 'R' (or 'left'/'right'), got {side!r}")
    return s


def normalise_side(side: str) -> str:
    """``"L"``/``"R"`` from ``"L"``, ``"left"``, ``"R"``, ``"right"`` (any case).

    Raises:
        ValueError: anything else.
    """
    return _check_side(side)


def side_from_stem(stem: str) -> str | None:
    """Hand side from a RAM-H1200 file stem (``..._L`` / ``..._R``), or None when the stem carries none."""
    tail = stem.rsplit("_", 1)[-1].upper() if "_" in stem else ""
    return tail if tail in SIDES else None


# ---------------------------------------------------------------------------------------------------------------------
# Totals and severity
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeverityClass:
    """A band of the per-hand SvdH total (inclusive bounds)."""

    index: int
    name: str
    low: int
    high: int


#: Per-hand severity classes on the hand's SvdH total (0..140), used by the whole-image severity head.
SEVERITY_CLASSES: tuple[SeverityClass, ...] = (
    SeverityClass(0, "none", 0, 0),
    SeverityClass(1, "minimal", 1, 5),
    SeverityClass(2, "mild", 6, 20),
    SeverityClass(3, "moderate", 21, 50),
    SeverityClass(4, "severe", 51, SVDH_MAX_PER_HAND),
)
SEVERITY_NAMES: tuple[str, ...] = tuple(c.name for c in SEVERITY_CLASSES)


def severity_of(total: float) -> SeverityClass:
    """Severity class of a per-hand SvdH total (rounded to the nearest integer, clipped to 0..140)."""
    t = int(round(min(max(float(total), 0.0), SVDH_MAX_PER_HAND)))
    for c in SEVERITY_CLASSES:
        if c.low <= t <= c.high:
            return c
    raise AssertionError("severity classes must cover 0..SVDH_MAX_PER_HAND")


def hand_totals(scores: dict[str, int | float | None]) -> dict[str, float]:
    """Erosion, JSN and SvdH totals of one hand from a ``{score key: value}`` dict (None values are skipped).

    Raises:
        KeyError: an unknown key; ValueError: a value outside its range.
    """
    be = jsn = 0.0
    for key, value in scores.items():
        lo, hi = score_range(key)
        if value is None:
            continue
        if not lo <= value <= hi:
            raise ValueError(f"{key}={value} is outside {lo}..{hi}")
        if key.startswith("BE_"):
            be += value
        else:
            jsn += value
    return {"erosion": be, "jsn": jsn, "svdh": be + jsn}


def areas_of_bone(name: str) -> tuple[SvdHArea, ...]:
    """The SvdH areas anchored to a bone class."""
    name = canonical_bone_name(name)
    return tuple(a for a in SVDH_AREAS if name in a.anchors)


def stems(kind: Literal["be", "jsn", "all"] = "all") -> tuple[str, ...]:
    """Area stems of one score kind (``"be"``: 16, ``"jsn"``: 15, ``"all"``: 22 distinct)."""
    return {"be": BE_STEMS, "jsn": JSN_STEMS, "all": AREA_STEMS}[kind]


def _check_invariants(areas: Iterable[SvdHArea] = SVDH_AREAS) -> None:
    areas = list(areas)
    assert len(BE_STEMS) == 16 and len(JSN_STEMS) == 15 and len(areas) == 22
    assert NUM_BONE_CLASSES == 30 and len(BONES) == 28
    for a in areas:
        for b in a.anchors:
            assert b in BONE_INDEX, (a.stem, b)
    for j in JOINTS.values():
        for b in j.proximal + j.distal:
            assert b in BONE_INDEX, (j.name, b)


_check_invariants()
