"""Many images decoded ahead of their use: :class:`DecodeAhead` takes the images of a batch lazily from the caller's
iterable and decodes them on one background thread, at most ``prefetch`` images ahead of the one being used, so file
reading and decompression overlap with the work done on each decoded image (the analyser's models).

A batch argument such as the pixel spacing or the hand side is given once for all images or once per image
(:class:`PerImage`); a value that cannot be used fails the whole call before any image is decoded.
"""
from __future__ import annotations

import numbers
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

import numpy as np

from ..anatomy import normalise_side
from .load import LoadedImage, check_spacing

T = TypeVar("T")


class PerImage:
    """A batch argument given once for all images or once per image: ``per[i]`` is image i's value.

    Args:
        value: one value for all images (None, a str, a Python or NumPy number, a 0-d array) or a sequence of one
            value per image.
        n: the number of images when known (the sequence's length is then checked), else None.
        name: the argument's name in messages (``"spacing_mm"``).
        check: called on every value that is not None; raises ValueError for a value that cannot be used.

    Raises:
        ValueError: ``value`` is neither one value nor a sequence; its length is not ``n``; ``check`` refused a value
            (the message names the argument and, for a sequence, the index).
    """

    def __init__(self, value, n: int | None, name: str, check: Callable[[Any], Any]) -> None:
        # NumPy scalars and 0-d arrays are one value for all images, like Python numbers.
        self.shared = value is None or isinstance(value, (str, numbers.Number, np.generic)) or (
            isinstance(value, np.ndarray) and value.ndim == 0)
        try:
            self.value = value if self.shared else list(value)
        except TypeError:
            raise ValueError(f"{name} must be one value or a sequence of one value per image, got {value!r}") from None
        if not self.shared and n is not None and len(self.value) != n:
            raise ValueError(f"{name} must be one value or one per image ({n}), got {len(self.value)}")
        for i, v in enumerate([self.value] if self.shared else self.value):  # bad values fail the call, not each image
            if v is not None:
                try:
                    check(v)
                except ValueError as e:
                    raise ValueError(f"{name}{'' if self.shared else f'[{i}]'}: {e}") from None

    def has_value(self, i: int) -> bool:
        """Whether image ``i`` has a value (always, for a shared one)."""
        return self.shared or i < len(self.value)

    def left_over(self, count: int) -> bool:
        """Whether per-image values remain once ``count`` images were taken."""
        return not self.shared and count < len(self.value)

    def __getitem__(self, i: int):
        return self.value if self.shared else self.value[i]


def source_name(item: Any) -> str:
    """How a batch item is named in results and errors: the path as given, a LoadedImage's source, ``"<array>"``,
    or the type in angle brackets (``"<bytes>"``)."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, LoadedImage):
        return item.source
    return "<array>" if isinstance(item, np.ndarray) else f"<{type(item).__name__}>"


class DecodeAhead(Generic[T]):
    """The images of a batch, decoded on a background thread ``prefetch`` images ahead of their use, in input order.

    Iterating yields ``(name, value, error)`` per image: ``name`` from :func:`source_name`, and either ``value`` =
    ``decode(item, spacing_mm, side)`` with ``error`` None, or ``value`` None and ``error`` the exception ``decode``
    raised (one image's failure does not stop the batch). ``images`` is consumed lazily, at most ``prefetch + 1``
    items ahead of the one just yielded, so a generator of large arrays streams through in bounded memory.

    Raised by the iteration once the images taken before have been yielded: ValueError when an unsized ``images``
    and a per-image ``spacing_mm`` / ``side`` sequence differ in length (found when one of them runs out), or the
    exception of the caller's ``images`` iterator itself. Closing the iterator (``close()``, or leaving it
    unfinished to the garbage collector) waits for the image being decoded and stops the thread.

    Args:
        images: an iterable of images (paths, bytes, arrays, :class:`~ramh_rt.io.LoadedImage`), not one image.
        decode: ``decode(item, spacing_mm, side) -> value``, run on the background thread; ``spacing_mm`` and
            ``side`` are the item's values (None when not given).
        spacing_mm: one pixel spacing in mm for all images or one per image (None entries: the file's).
        side: one hand side (L/R/left/right) for all images or one per image.
        prefetch: how many images are decoded ahead of the one in use (0: decode each just before its use).

    Raises (on construction, before any image is taken):
        ValueError: ``prefetch`` is not an integer >= 0; ``spacing_mm`` / ``side`` holds an unusable value, or has
            not one value per image when ``images`` has a length.
        TypeError: ``images`` is one image (a path, bytes, a LoadedImage, an array of fewer than 3 dimensions)
            instead of an iterable of them.
    """

    def __init__(self, images: Iterable[Any], decode: Callable[[Any, float | None, str | None], T], *,
                 spacing_mm=None, side=None, prefetch: int = 2) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an integer >= 0, got {prefetch!r}")
        if isinstance(images, (str, bytes, os.PathLike, LoadedImage)) or (
                isinstance(images, np.ndarray) and images.ndim < 3):
            raise TypeError(f"images must be an iterable of images (one image: use analyze()), got "
                            f"{type(images).__name__}")
        #: The number of images when ``images`` has a length, else None.
        self.count: int | None = len(images) if hasattr(images, "__len__") else None
        self._spacing = PerImage(spacing_mm, self.count, "spacing_mm", check_spacing)
        self._side = PerImage(side, self.count, "side", normalise_side)
        self._images = images
        self._decode = decode
        self._prefetch = prefetch
        self._started = False

    def __iter__(self) -> Iterator[tuple[str, T | None, BaseException | None]]:
        """The decoded images in input order (see the class docstring); an instance is iterated once.

        Raises:
            RuntimeError: the instance was iterated before.
        """
        if self._started:
            raise RuntimeError("a DecodeAhead is iterated once (its images are consumed)")
        self._started = True
        return self._run()

    def _attempt(self, item, spacing, side) -> tuple[T | None, BaseException | None]:
        try:
            return self._decode(item, spacing, side), None
        except BaseException as e:  # noqa: BLE001 - reported per image
            return None, e

    def _run(self) -> Iterator[tuple[str, T | None, BaseException | None]]:
        sp, sd, source = self._spacing, self._side, iter(self._images)
        pending: deque = deque()  # (source name, decode future), oldest first
        taken = 0  # images taken from `images`
        # Raised once the images taken so far were yielded: a per-image argument that does not match the images
        # (ValueError), or the exception of the caller's own iterator.
        deferred: BaseException | None = None
        exhausted = False

        def refill(pool) -> None:
            nonlocal taken, deferred, exhausted
            while not exhausted and len(pending) <= self._prefetch:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    extra = [name for name, per in (("spacing_mm", sp), ("side", sd)) if per.left_over(taken)]
                    if extra:
                        deferred = ValueError(f"{extra[0]} has more values than there are images ({taken})")
                    return
                except Exception as e:  # noqa: BLE001 - the caller's iterator failed: finish what was taken
                    exhausted, deferred = True, e
                    return
                missing = [name for name, per in (("spacing_mm", sp), ("side", sd)) if not per.has_value(taken)]
                if missing:
                    exhausted = True
                    deferred = ValueError(f"{missing[0]} has {taken} values but there are more images")
                    return
                pending.append((source_name(item), pool.submit(self._attempt, item, sp[taken], sd[taken])))
                taken += 1

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ramh-decode")
        try:
            refill(pool)
            while pending:
                name, future = pending.popleft()
                value, error = future.result()
                del future  # the image is referenced by the consumer alone once it is done with it
                refill(pool)  # keep the decoder busy while this image is used
                yield name, value, error
                del value, error
        finally:
            # Closed early: the decodes queued behind the running one are cancelled, not run for nobody.
            pool.shutdown(wait=True, cancel_futures=True)
        if deferred is not None:
            raise deferred


__all__ = ["DecodeAhead", "PerImage", "source_name"]
