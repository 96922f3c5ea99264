"""Synthetic PA hand radiographs with exact ground truth for every RAM-H1200 annotation level.

``generate(seed, config)`` draws a patient (RA or not, severity), SvdH scores, a parametric hand (28 bones, sesamoids,
soft tissue) whose joint spaces and erosions are built from those scores, and renders it like a radiograph of one of
several centres. The modules, one per concept:

* :mod:`.config` — :class:`PhantomConfig` and the scanner profiles;
* :mod:`.shapes` — polygons, the exact pixel-centre rasteriser, bone outlines and carpal templates;
* :mod:`.skeleton` — the sampled anatomy and the placement of every bone with exact joint spaces, ROIs, soft tissue;
* :mod:`.disease` — severity and score sampling, JSN widths, erosion lesions;
* :mod:`.render` — attenuation, texture, acquisition (noise, blur, processing, display);
* :mod:`.generator` — :func:`generate`, which assembles a :class:`~ramh_train.datasets.sample.HandSample`.

The phantoms are test data and the training set of the demo weights; they are not clinical data.
"""
from .config import (APPEARANCES, CALIBRATED_PROFILES, REAL_PROFILES, SCANNER_PROFILES, SHAPE_MODELS, FilmLook,
                     PhantomConfig, ScannerProfile)
from .generator import GENERATOR_VERSION, SOFT_TISSUE_DEFINITION, generate

__all__ = ["APPEARANCES", "CALIBRATED_PROFILES", "FilmLook", "GENERATOR_VERSION", "PhantomConfig", "REAL_PROFILES",
           "SCANNER_PROFILES", "SHAPE_MODELS",
           "SOFT_TISSUE_DEFINITION", "ScannerProfile", "generate"]
