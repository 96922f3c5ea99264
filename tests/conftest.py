import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def reference_root() -> Path | None:
    """The real reference data (``shared/reference``: real hand films, landmark tables, RAM-W600 wrists).

    It is not part of the repository (its terms forbid copying it in): ``$RAMH_SHARED/reference`` when that is set,
    else ``shared/reference`` beside the repository, else ``/work/shared/reference``. None when none exists.
    """
    candidates = [Path(os.environ["RAMH_SHARED"]) / "reference"] if os.environ.get("RAMH_SHARED") else []
    candidates += [REPO.parent / "shared" / "reference", Path("/work/shared/reference")]
    return next((c for c in candidates if c.is_dir()), None)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``shared/reference`` (see :func:`reference_root`); the test is skipped when it is absent."""
    root = reference_root()
    if root is None:
        pytest.skip("real reference data (shared/reference) is not available on this machine")
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
