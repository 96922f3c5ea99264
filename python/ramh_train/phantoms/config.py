"""Configuration of the phantom generator: image geometry, patient population, acquisition and test overrides."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from ramh_rt import anatomy


#: Hand-shape models (:attr:`PhantomConfig.shape`). ``"ramh-phantom-1"``: the hand-tuned proportions the default
#: bundle was trained on. ``"ra2-fitted"``: proportions and their spread fitted to the joint landmarks of 827 real
#: adult RA hands (RA2-DREAM) with ``benchmarks/shape_fit.py`` (parameters: ``skeleton.RA2_FITTED``): shorter
#: proximal phalanges, a more curved MCP arc, a less abducted thumb, and about twice the variation in finger spread,
#: metacarpal angles and phalanx lengths.
SHAPE_MODELS = ("ramh-phantom-1", "ra2-fitted")


def _check_range(name: str, r, *, low: float | None = None, high: float | None = None) -> None:
    try:
        lo, hi = (float(r[0]), float(r[1]))
        if len(r) != 2:
            raise TypeError
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {r!r}") from None
    if not lo <= hi:
        raise ValueError(f"{name} must satisfy low <= high, got {r!r}")
    if low is not None and lo < low:
        raise ValueError(f"{name} must be >= {low}, got {r!r}")
    if high is not None and hi > high:
        raise ValueError(f"{name} must be <= {high}, got {r!r}")


def _normalise_forced(name: str, value, kind: str) -> dict[str, int] | None:
    if value is None:
        return None
    keys = anatomy.BE_KEYS if kind == "BE" else anatomy.JSN_KEYS
    hi = anatomy.BE_MAX if kind == "BE" else anatomy.JSN_MAX
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int, a mapping or None, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= hi:
            raise ValueError(f"{name}={value} is outside 0..{hi}")
        return {k: int(value) for k in keys}
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be an int, a mapping or None, got {type(value).__name__}")
    out: dict[str, int] = {}
    for k, v in value.items():
        key = k if str(k).startswith(kind + "_") else f"{kind}_{k}"
        if key not in keys:
            raise ValueError(f"{name} has unknown key {k!r}; known: {', '.join(keys)}")
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
            raise ValueError(f"{name}[{k!r}]={v!r} must be an int in 0..{hi}")
        out[key] = int(v)
    return out


#: Percent points of the hand's pixel distribution that :class:`FilmLook` matches.
TISSUE_PERCENTS: tuple[float, ...] = (2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98)
#: The real films' display levels at :data:`TISSUE_PERCENTS` of their hand/forearm silhouette's pixels, the film
#: windowed to its 1st-99.5th percentiles (as ``benchmarks/realism.py`` measures it): the 25th and the 75th percentile
#: over the 54 real films of the reference set (48 RSNA bone-age films, 2 Digital Hand Atlas hands, 4 RAM-W600 wrists;
#: statistics only, measured with ``benchmarks/appearance_fit.py``). Real processing puts the soft tissue at ~0.3-0.45
#: and spreads the bone continuously up to white: no gap between a soft-tissue and a bone mode.
REAL_TISSUE_LEVELS_P25: tuple[float, ...] = (0.257, 0.287, 0.315, 0.355, 0.385, 0.424, 0.468, 0.509, 0.580, 0.652,
                                             0.763, 0.842, 0.971)
REAL_TISSUE_LEVELS_P75: tuple[float, ...] = (0.323, 0.362, 0.394, 0.436, 0.478, 0.521, 0.572, 0.627, 0.718, 0.800,
                                             0.889, 0.942, 0.997)


@dataclass(frozen=True)
class FilmLook:
    """How a real department's film looks beyond what the detector model gives: the display's tone curve (it replaces
    the profile's four display levels), the film digitiser's glare, blur and grain, a non-uniform open field and
    burned-in lead markers, plus two things of real hands no mask depends on (a domed soft tissue, a fainter cortex).
    Ranges are sampled uniformly per image (display levels in 0..1 of full scale; lengths in mm).

    Attributes:
        tissue_low / tissue_high: display levels of the hand's pixels at :data:`TISSUE_PERCENTS` (two monotone
            curves); an image's tone curve maps its own attenuation percentiles to ``low + mix * (high - low)``
            (histogram specification: the soft tissue, the bone and their contrast land where real films have them).
        mix: range of ``mix`` (outside 0..1 extrapolates; the curve is kept monotone).
        background: range of the open field's display level, drawn skewed to its low end (``lo + (hi - lo) u**3``):
            most real open fields are near black, a few films are grey all over.
        background_variation: range of the amplitude of a smooth non-uniform open field (uneven plate response,
            film fog), display units.
        glare: range of the veiling-glare fraction: the film density becomes ``(1 - g) d + g lowpass(d)`` before the
            tone curve, a halo around the hand that lifts the background next to the skin.
        glare_mm: range of the glare's Gaussian sigma.
        digitiser_blur_mm: range of the extra Gaussian blur (sigma) of printing and digitising the film.
        grain: range of the film grain's standard deviation (display units) at mid-grey; it scales with the square
            root of the display level (denser film, more grain).
        grain_mm: range of the grain's correlation length (Gaussian sigma).
        marker_probability: chance of a burned-in lead side marker, date text and ruler (outside the hand).
        soft_tissue_bulk_mm: range of the extra soft-tissue thickness along the middle of the palm and forearm (a
            smooth dome that thins towards the skin; no mask changes).
        fringe: range of the share of the silhouette's pixels (the thinnest soft tissue, at the skin line) displayed
            below the real levels' lowest point, on a toe from the background: real films show the thin soft tissue
            of the fingers' edges dim, and a threshold (as the levels were measured) does not count it as hand.
        cortex: range of the cortical shell's density relative to the default renderer's (the bright rims and
            subchondral lines are fainter on real films, most of all on children's).

    Raises:
        ValueError: a curve that is not monotone, in [0, 1] and of len(TISSUE_PERCENTS) levels, ``tissue_high`` below
            ``tissue_low``, a range that is not a (low, high) pair within its bounds, or a probability outside [0, 1].
    """

    tissue_low: tuple[float, ...] = REAL_TISSUE_LEVELS_P25
    tissue_high: tuple[float, ...] = REAL_TISSUE_LEVELS_P75
    mix: tuple[float, float] = (-0.5, 1.5)
    background: tuple[float, float] = (0.03, 0.35)
    background_variation: tuple[float, float] = (0.01, 0.08)
    glare: tuple[float, float] = (0.15, 0.35)
    glare_mm: tuple[float, float] = (2.0, 10.0)
    digitiser_blur_mm: tuple[float, float] = (0.05, 0.25)
    grain: tuple[float, float] = (0.004, 0.012)
    grain_mm: tuple[float, float] = (0.05, 0.15)
    marker_probability: float = 0.8
    soft_tissue_bulk_mm: tuple[float, float] = (60.0, 120.0)
    fringe: tuple[float, float] = (0.1, 0.3)
    cortex: tuple[float, float] = (0.6, 0.9)

    def __post_init__(self) -> None:
        n = len(TISSUE_PERCENTS)
        for name in ("tissue_low", "tissue_high"):
            c = getattr(self, name)
            if len(c) != n or any(not 0.0 <= float(v) <= 1.0 for v in c) or any(b < a for a, b in zip(c, c[1:])):
                raise ValueError(f"FilmLook.{name} must be {n} non-decreasing levels in [0, 1], got {c!r}")
        if any(h < lo for lo, h in zip(self.tissue_low, self.tissue_high)):
            raise ValueError("FilmLook.tissue_high must lie at or above tissue_low at every percent point")
        _check_range("FilmLook.mix", self.mix, low=-2.0, high=3.0)
        for name in ("background", "background_variation", "glare", "grain", "fringe"):
            _check_range(f"FilmLook.{name}", getattr(self, name), low=0.0, high=1.0)
        for name in ("glare_mm", "digitiser_blur_mm", "grain_mm", "soft_tissue_bulk_mm", "cortex"):
            _check_range(f"FilmLook.{name}", getattr(self, name), low=0.0, high=200.0)
        if not 0.0 <= float(self.marker_probability) <= 1.0:
            raise ValueError(f"FilmLook.marker_probability must be a probability, got {self.marker_probability!r}")


@dataclass(frozen=True)
class ScannerProfile:
    """One acquisition centre's look ("centre-to-centre variation"). Ranges are sampled uniformly per image.

    Attributes:
        code: short centre code used in the file stem (``SY_<code>_P...``).
        photons_per_mm2: range of detected quanta per mm² at the unattenuated field (sets the quantum noise; the
            per-pixel count scales with the pixel area).
        blur_mm: range of the detector blur (Gaussian sigma, mm): the MTF.
        unsharp_amount: range of the unsharp-mask gain of the centre's processing (0: none).
        unsharp_sigma_mm: range of the unsharp-mask kernel sigma (mm).
        soft_level / bone_level: ranges of the display levels (0..1 of full scale) of the median soft tissue and
            of the median bone; the centre's automatic windowing maps the measured attenuation through (open field,
            ``background``), (median soft tissue, ``soft_level``), (median bone, ``bone_level``) and (densest bone,
            ``white``) with a smooth monotone curve.
        background: range of the display level of the unattenuated field (0..1 of full scale).
        white: range of the display level that the densest bone approaches (0..1).
        heel: range of the relative exposure gradient along the long image axis (anode heel effect).
        scatter: range of the scatter-to-primary fraction (low-frequency fog under thick tissue).
        electronic_noise: range of the additive noise sigma (fraction of the unattenuated signal).
        trabecular_contrast: range of the trabecular texture amplitude.
        look: how the centre's films were processed, printed and digitised (:class:`FilmLook`); None (the default
            profiles): the display is the windowing curve above, quantised, nothing more.
    """

    code: str
    photons_per_mm2: tuple[float, float]
    blur_mm: tuple[float, float]
    unsharp_amount: tuple[float, float]
    unsharp_sigma_mm: tuple[float, float]
    soft_level: tuple[float, float]
    bone_level: tuple[float, float]
    background: tuple[float, float]
    white: tuple[float, float]
    heel: tuple[float, float]
    scatter: tuple[float, float]
    electronic_noise: tuple[float, float]
    trabecular_contrast: tuple[float, float]
    look: FilmLook | None = None

    def __post_init__(self) -> None:
        if not self.code or not self.code.isalnum():
            raise ValueError(f"ScannerProfile.code must be a non-empty alphanumeric string, got {self.code!r}")
        for name in ("photons_per_mm2", "blur_mm", "unsharp_amount", "unsharp_sigma_mm", "soft_level", "bone_level",
                     "background", "white", "heel", "scatter", "electronic_noise", "trabecular_contrast"):
            _check_range(f"ScannerProfile({self.code}).{name}", getattr(self, name), low=0.0)
        _check_range(f"ScannerProfile({self.code}).photons_per_mm2", self.photons_per_mm2, low=1.0)
        if not (self.background[1] < self.soft_level[0] and self.soft_level[1] < self.bone_level[0]
                and self.bone_level[1] < self.white[0]):
            raise ValueError(f"ScannerProfile({self.code}): need background {self.background} < soft_level "
                             f"{self.soft_level} < bone_level {self.bone_level} < white {self.white}")
        if self.background[1] >= self.white[0]:
            raise ValueError(f"ScannerProfile({self.code}): background {self.background} must lie below white "
                             f"{self.white}")
        if self.white[1] > 1.0:
            raise ValueError(f"ScannerProfile({self.code}).white must be <= 1, got {self.white}")
        if self.look is not None and not isinstance(self.look, FilmLook):
            raise ValueError(f"ScannerProfile({self.code}).look must be a FilmLook or None, got "
                             f"{type(self.look).__name__}")


#: Six centres, as in RAM-H1200: computed radiography with strong edge enhancement, flat-panel detectors with
#: little processing, a noisy low-dose unit, a soft (blurry) unit, a high-contrast unit and a film-like one.
SCANNER_PROFILES: tuple[ScannerProfile, ...] = (
    ScannerProfile("CRA", photons_per_mm2=(300000, 600000), blur_mm=(0.07, 0.1), unsharp_amount=(0.5, 0.9),
                   unsharp_sigma_mm=(1.5, 3), soft_level=(0.44, 0.52), bone_level=(0.76, 0.82),
                   background=(0.04, 0.09), white=(0.93, 0.97), heel=(0.04, 0.1), scatter=(0.1, 0.2),
                   electronic_noise=(0.002, 0.004), trabecular_contrast=(0.8, 1.1)),
    ScannerProfile("DRB", photons_per_mm2=(600000, 1.2e+06), blur_mm=(0.05, 0.08), unsharp_amount=(0.3, 0.6),
                   unsharp_sigma_mm=(2, 4), soft_level=(0.46, 0.55), bone_level=(0.78, 0.84),
                   background=(0.02, 0.06), white=(0.92, 0.96), heel=(0.02, 0.06), scatter=(0.05, 0.12),
                   electronic_noise=(0.001, 0.003), trabecular_contrast=(0.9, 1.2)),
    ScannerProfile("LDC", photons_per_mm2=(150000, 300000), blur_mm=(0.07, 0.11), unsharp_amount=(0.4, 0.8),
                   unsharp_sigma_mm=(1.5, 3), soft_level=(0.42, 0.5), bone_level=(0.74, 0.8),
                   background=(0.05, 0.1), white=(0.9, 0.95), heel=(0.05, 0.12), scatter=(0.12, 0.22),
                   electronic_noise=(0.003, 0.006), trabecular_contrast=(0.7, 1)),
    ScannerProfile("SFT", photons_per_mm2=(400000, 800000), blur_mm=(0.1, 0.15), unsharp_amount=(0.2, 0.5),
                   unsharp_sigma_mm=(2.5, 4.5), soft_level=(0.48, 0.58), bone_level=(0.76, 0.82),
                   background=(0.04, 0.08), white=(0.9, 0.95), heel=(0.03, 0.08), scatter=(0.12, 0.25),
                   electronic_noise=(0.002, 0.004), trabecular_contrast=(0.6, 0.9)),
    ScannerProfile("HCT", photons_per_mm2=(400000, 900000), blur_mm=(0.06, 0.09), unsharp_amount=(0.6, 1),
                   unsharp_sigma_mm=(1.2, 2.5), soft_level=(0.38, 0.46), bone_level=(0.8, 0.86),
                   background=(0.01, 0.05), white=(0.95, 0.99), heel=(0.03, 0.09), scatter=(0.06, 0.14),
                   electronic_noise=(0.001, 0.003), trabecular_contrast=(0.9, 1.3)),
    ScannerProfile("FLM", photons_per_mm2=(300000, 700000), blur_mm=(0.08, 0.12), unsharp_amount=(0.1, 0.4),
                   unsharp_sigma_mm=(3, 5), soft_level=(0.5, 0.6), bone_level=(0.74, 0.8), background=(0.06, 0.12),
                   white=(0.88, 0.94), heel=(0.06, 0.14), scatter=(0.15, 0.28), electronic_noise=(0.002, 0.005),
                   trabecular_contrast=(0.7, 1)),
)

#: The six centres with their display levels, scatter and heel calibrated against real films (the 48 bone-age films,
#: 2 atlas hands and 4 RAM-W600 wrists of the reference set): windowed to their 1st-99.5th percentiles, the hand's
#: pixels of real films have deciles 0.36 / 0.52 / 0.83 (10th / 50th / 90th percentile) where the default profiles give
#: 0.48 / 0.80 / 0.94 (bones near white, little mid-grey); these levels give 0.34 / 0.56 / 0.79. Noise, blur and edge
#: enhancement stay each centre's. Opt in with ``PhantomConfig(profiles=CALIBRATED_PROFILES)``; the shipped bundle
#: was trained on :data:`SCANNER_PROFILES`. Measured with ``benchmarks/realism.py``.
CALIBRATED_PROFILES: tuple[ScannerProfile, ...] = tuple(
    replace(p, soft_level=(0.13, 0.25), bone_level=(0.3, 0.46), white=(0.78, 0.92), background=(0.01, 0.06),
            scatter=(0.15, 0.35), heel=(0.05, 0.15))
    for p in SCANNER_PROFILES)


#: The six centres as real departments' films look (the ``"real-calibrated"`` appearance): less edge enhancement, a
#: softer MTF, each centre's trabecular texture amplitude raised back (the fainter cortex leaves it visible), each
#: centre's quantum and electronic noise kept, and the film's own look (:class:`FilmLook`: a tone curve matched to the
#: real films' hand-pixel distribution, glare halo, digitiser blur, grain, uneven open field, soft-tissue dome, fainter
#: cortex, lead markers). Calibrated feature by feature against the real reference films with
#: ``benchmarks/realism.py --show`` (numbers and figures: docs/phantom_appearance.md). Geometry, anatomy, disease and
#: every mask are those of the same seed under any appearance. Opt in with ``PhantomConfig(profiles=REAL_PROFILES)``
#: (``ramh-data phantoms --appearance real-calibrated``).
REAL_PROFILES: tuple[ScannerProfile, ...] = tuple(
    replace(p, scatter=(0.15, 0.35), heel=(0.05, 0.15), trabecular_contrast=(0.4, 0.9), unsharp_amount=(0.0, 0.15),
            blur_mm=(0.1, 0.16), look=FilmLook())
    for p in SCANNER_PROFILES)

#: Named appearances (``ramh-data phantoms --appearance``, ``benchmarks/realism.py --profiles``): the profile sets.
APPEARANCES: dict[str, tuple[ScannerProfile, ...]] = {"default": SCANNER_PROFILES, "calibrated": CALIBRATED_PROFILES,
                                                      "real-calibrated": REAL_PROFILES}


@dataclass(frozen=True)
class PhantomConfig:
    """Everything :func:`ramh_train.phantoms.generate` can be told. All ranges are inclusive ``(low, high)`` and sampled
    uniformly per image unless stated otherwise; lengths in mm.

    Image geometry:
        spacing_mm: pixel spacing range (mm/px). The default gives images of about 1400-2900 px a side.
        field_mm: (width, height) ranges of the detector field; the field grows when a large, spread hand would not
            fit, so every bone is always inside the image.
        rotation_sd_deg / rotation_max_deg: in-plane rotation of the whole hand: normal with this SD, clipped.
        side: ``"L"``, ``"R"`` or None (random, P(left) = ``p_left``). A left hand is the exact mirror image of the
            right hand drawn with the same parameters.
        hand_scale: range of the overall hand size factor (1 = an average adult).
        shape: the hand-shape model (:data:`SHAPE_MODELS`): ``"ramh-phantom-1"`` (the
            default; what the shipped bundle was trained on) or ``"ra2-fitted"`` (proportions and variation fitted to
            827 real adult RA hands; see benchmarks/shape_fit.py and docs/phantom_shape_fit.md).
        dtype: ``"uint8"`` (as RAM-H1200 ships) or ``"uint16"`` (full 16-bit range).

    Patient population and disease:
        ra_fraction: share of patients with RA; the others have all-zero scores and no lesions.
        severity_shape / severity_scale: Gamma distribution of the latent severity of an RA patient (a few severe,
            many mild: most per-area scores are 0 with a long tail).
        force_be / force_jsn: scores imposed on every image (tests, balanced training): an int applies to every
            area of that kind, a mapping ``{"BE_MCP-I": 3, ...}`` (or bare stems ``{"MCP-I": 3}``) to the named
            areas; the rest stay sampled. Geometry is then built from the forced scores.
        non_svdh_rate: mean number of Non-SvdH erosions (DIP joints, capitate, hamate, triquetrum) on a hand of
            average RA severity; scaled by the patient's severity; they never count in scores.

    Acquisition:
        profiles: the scanner profiles sampled from (one per image, uniformly).
        noise: quantum and electronic noise on/off (off: a clean rendering, for debugging only).
        collimation_probability: chance of black collimator borders (never over the hand).
        ring_probability / cannula_probability: chance of a metal ring on a finger / an intravenous cannula on the
            dorsum of the hand (bright, in no mask).
        sesamoid_probability: chance of each optional sesamoid (MCP2, MCP5, IP1); the two at MCP1 appear with
            probability ``max(sesamoid_probability, 0.95)``.

    Visits:
        pose_seed: seed of the pose and exposure draws (layout, acquisition, noise, distractors); None: the image's
            seed. A second radiograph of the same hand (same seed, so same anatomy and patient) at a later visit
            uses another pose_seed (:mod:`ramh_train.phantoms.visits`).

    Juvenile hands (:mod:`ramh_train.phantoms.juvenile`):
        skeletal_age: None (default: adult hands, exactly as before) or a (low, high) range of skeletal ages in years
            within [2, 18]: a juvenile hand draws its age uniformly from it and is rendered as a healthy child's hand
            of that age (size, epiphyses with open growth plates, carpal ossification; no RA, all scores 0).
        juvenile_fraction: with ``skeletal_age`` set, the share of hands that are juvenile (1: all; the others are
            adult hands as drawn without it), so that a training set can mix them in.
    """

    spacing_mm: tuple[float, float] = (0.10, 0.14)
    field_mm: tuple[tuple[float, float], tuple[float, float]] = ((190.0, 240.0), (235.0, 290.0))
    rotation_sd_deg: float = 7.0
    rotation_max_deg: float = 20.0
    side: str | None = None
    p_left: float = 0.5
    hand_scale: tuple[float, float] = (0.86, 1.14)
    shape: str = "ramh-phantom-1"
    dtype: str = "uint8"
    ra_fraction: float = 0.72
    severity_shape: float = 0.9
    severity_scale: float = 1.2
    force_be: int | Mapping[str, int] | None = None
    force_jsn: int | Mapping[str, int] | None = None
    non_svdh_rate: float = 0.6
    profiles: tuple[ScannerProfile, ...] = field(default=SCANNER_PROFILES)
    noise: bool = True
    collimation_probability: float = 0.5
    ring_probability: float = 0.08
    cannula_probability: float = 0.04
    sesamoid_probability: float = 0.3
    pose_seed: int | None = None
    skeletal_age: tuple[float, float] | None = None
    juvenile_fraction: float = 1.0

    def __post_init__(self) -> None:
        _check_range("spacing_mm", self.spacing_mm, low=0.02, high=2.0)
        if len(self.field_mm) != 2:
            raise ValueError(f"field_mm must be ((w_lo, w_hi), (h_lo, h_hi)), got {self.field_mm!r}")
        _check_range("field_mm[0] (width)", self.field_mm[0], low=50.0, high=1000.0)
        _check_range("field_mm[1] (height)", self.field_mm[1], low=50.0, high=1000.0)
        _check_range("hand_scale", self.hand_scale, low=0.5, high=1.5)
        for name in ("rotation_sd_deg", "rotation_max_deg"):
            v = getattr(self, name)
            if not (0.0 <= float(v) <= 45.0):
                raise ValueError(f"{name} must lie in [0, 45] degrees, got {v!r}")
        if self.side is not None and self.side not in anatomy.SIDES:
            raise ValueError(f"side must be 'L', 'R' or None, got {self.side!r}")
        for name in ("p_left", "ra_fraction", "collimation_probability", "ring_probability", "cannula_probability",
                     "sesamoid_probability"):
            v = getattr(self, name)
            if not (0.0 <= float(v) <= 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
        if self.shape not in SHAPE_MODELS:
            raise ValueError(f"shape must be one of {SHAPE_MODELS}, got {self.shape!r}")
        if self.dtype not in ("uint8", "uint16"):
            raise ValueError(f"dtype must be 'uint8' or 'uint16', got {self.dtype!r}")
        if not (self.severity_shape > 0 and self.severity_scale > 0):
            raise ValueError(f"severity_shape and severity_scale must be > 0, got {self.severity_shape!r}, "
                             f"{self.severity_scale!r}")
        if self.pose_seed is not None and (isinstance(self.pose_seed, bool) or not isinstance(self.pose_seed, int)
                                           or not 0 <= self.pose_seed < 2**63):
            raise ValueError(f"pose_seed must be None or an int in [0, 2**63), got {self.pose_seed!r}")
        if not self.non_svdh_rate >= 0:
            raise ValueError(f"non_svdh_rate must be >= 0, got {self.non_svdh_rate!r}")
        if not self.profiles or not all(isinstance(p, ScannerProfile) for p in self.profiles):
            raise ValueError("profiles must be a non-empty tuple of ScannerProfile")
        if self.skeletal_age is not None:
            _check_range("skeletal_age", self.skeletal_age, low=2.0, high=18.0)
            object.__setattr__(self, "skeletal_age", (float(self.skeletal_age[0]), float(self.skeletal_age[1])))
        if not (0.0 <= float(self.juvenile_fraction) <= 1.0):
            raise ValueError(f"juvenile_fraction must be a probability in [0, 1], got {self.juvenile_fraction!r}")
        if self.skeletal_age is None and float(self.juvenile_fraction) != 1.0:
            raise ValueError("juvenile_fraction needs skeletal_age (the ages of the juvenile hands)")
        # Normalise and check the forced scores once (raises ValueError naming the bad key or value).
        object.__setattr__(self, "force_be", _normalise_forced("force_be", self.force_be, "BE"))
        object.__setattr__(self, "force_jsn", _normalise_forced("force_jsn", self.force_jsn, "JSN"))
        if self.skeletal_age is not None and any(v for f in (self.force_be, self.force_jsn) if f for v in f.values()):
            raise ValueError("juvenile hands (skeletal_age) are healthy: force_be / force_jsn must be None or 0")

    def forced(self, kind: str) -> dict[str, int]:
        """The forced scores of ``kind`` (``"BE"`` or ``"JSN"``) as ``{score key: value}`` (empty when none)."""
        f = self.force_be if kind == "BE" else self.force_jsn
        return dict(f) if f else {}
