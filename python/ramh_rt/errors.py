"""Exception types of the ramh_rt runtime.

Every error the runtime raises on purpose derives from :class:`RamhError`, so ``except ramh_rt.errors.RamhError``
catches them all. Each concrete type also derives from the built-in exception a caller would expect for that kind
of failure (``ValueError`` for bad input, ``RuntimeError`` for an engine that cannot run), so generic handlers keep
working.
"""
from __future__ import annotations


class RamhError(Exception):
    """Base class of all errors raised on purpose by ramh_rt."""


class ImageLoadError(RamhError, ValueError):
    """An image could not be read or is not acceptable as input.

    The message names the source (file path, ``"<array>"`` or ``"<bytes>"``) and the reason: missing or unreadable
    file, unknown or corrupt format, declared size outside the accepted range, unsupported pixel type or shape,
    NaN/inf values, a DICOM without pixel data or with a transfer syntax no installed handler can decode.
    """


class BundleError(RamhError, ValueError):
    """A model bundle is missing, malformed, tampered with or inconsistent with this runtime.

    The message names the bundle and what is wrong (the manifest field path, the file with its expected and actual
    sha256, the anatomy version...).
    """


class BackendError(RamhError, RuntimeError):
    """An inference backend is unavailable, could not create a session, or was given feeds it cannot run.

    The message names the backend and the model or tensor concerned.
    """


class FeedError(BackendError, ValueError):
    """The feeds given to a session do not match its inputs: a missing or unexpected name, a wrong dtype, shape or
    device, or a batch outside what the engine was built for. The message names the model, the input, and what was
    expected. Also a ``ValueError``: it is the caller's argument that is wrong."""


class NotAHandError(RamhError, ValueError):
    """The image is not a hand radiograph: blank, noise, a photograph, or a radiograph of another body part.

    The message says what was seen (a uniform image, noise, no structure the size of a hand, bones that do not make
    a hand in any orientation). In a batch it becomes that image's ``AnalysisError``. :attr:`reason_code` is the
    quality-control reason code of this outcome.
    """

    reason_code = "not_a_hand"


class MultipleHandsError(RamhError, ValueError):
    """``analyze`` was given a film with two hands and no ``side=`` to choose one (or a side no hand has).

    Attributes:
        sides: the side of each hand found, in film order (``"L"``, ``"R"`` or None when undecided).
    Use ``analyze_hands`` to analyse every hand of the film.
    """

    def __init__(self, message: str, sides: list[str | None] | tuple = ()):
        super().__init__(message)
        self.sides = list(sides)


__all__ = ["RamhError", "ImageLoadError", "BundleError", "BackendError", "FeedError", "NotAHandError",
           "MultipleHandsError"]
