"""Study-level metadata of RAM-H1200: ``Metadata.xlsx`` (read with openpyxl when it is installed) or ``Metadata.csv``
(this package's writer), columns ``"Mapped Image Stem"``, ``"isRA"``, ``"Sex"`` (more columns are kept)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .errors import Problems
from .layout import METADATA_COLUMNS, METADATA_STEM_COLUMN, Layout, image_stem


def _rows_csv(path: Path) -> tuple[list[str], list[list[Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets often save a BOM
        rows = list(csv.reader(f))
    return (rows[0] if rows else []), rows[1:]


def _rows_xlsx(path: Path) -> tuple[list[str], list[list[Any]]]:
    import openpyxl  # optional dependency; the caller handles ImportError

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    finally:
        wb.close()
    header = ["" if v is None else str(v).strip() for v in (rows[0] if rows else [])]
    return header, rows[1:]


def read_metadata(layout: Layout, problems: Problems,
                  sources: tuple[str, ...] = ("xlsx", "csv")) -> dict[str, dict[str, Any]]:
    """Metadata rows by image stem: ``{stem: {"isRA": ..., "Sex": ..., <other columns>}}`` (values as stored: strings
    from CSV, cell values from XLSX; empty cells are None).

    Both files are read when both exist. Reported: a missing required column or empty stem (error), a stem listed
    twice (error), Metadata.xlsx present while openpyxl is not installed (warning: not read). No file: ``{}``.
    ``sources`` selects the files to read (``"xlsx"``, ``"csv"``).
    """
    out: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}
    files = {"xlsx": (layout.metadata_xlsx(), _rows_xlsx), "csv": (layout.metadata_csv(), _rows_csv)}
    for path, reader in (files[s] for s in ("xlsx", "csv") if s in sources):
        if not path.exists():
            continue
        rel = layout.rel(path)
        try:
            header, rows = reader(path)
        except ImportError:
            problems.warning(rel, None, "openpyxl is not installed, so this file was not read "
                                        "(pip install openpyxl, or provide Metadata.csv)")
            continue
        except (OSError, ValueError, KeyError, csv.Error) as e:  # openpyxl raises these on damaged files
            problems.error(rel, None, f"cannot be read: {e}")
            continue
        header = [h.strip() for h in header]
        missing = [c for c in METADATA_COLUMNS if c not in header]
        if missing:
            problems.error(rel, None, f"missing column(s) {', '.join(map(repr, missing))} (header: {header})")
            continue
        if len(set(header)) != len(header):
            problems.error(rel, None, f"a column name appears more than once (header: {header})")
            continue
        for i, row in enumerate(rows, start=2):
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                continue  # blank line
            rec = dict(zip(header, list(row) + [None] * (len(header) - len(row))))
            rec = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in rec.items()}
            stem_v = rec.pop(METADATA_STEM_COLUMN)
            if stem_v is None:
                problems.error(rel, f"row {i}", f"empty {METADATA_STEM_COLUMN!r}")
                continue
            stem = image_stem(str(stem_v))
            if stem in out:
                problems.error(rel, f"row {i} ({stem!r})", f"image stem listed more than once (also {where[stem]})")
                continue
            out[stem] = rec
            where[stem] = f"{rel} row {i}"
    return out
