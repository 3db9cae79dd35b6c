"""TCGA sample barcodes: case and sample type of a barcode, and one sample chosen per case."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_TYPES: tuple[str, ...] = ("01",)
"""TCGA sample-type codes kept by default, in order of preference (01 = primary solid tumour)."""

SAMPLE_BARCODE_RE = re.compile(r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})-(\d{2})([A-Z]?)(?:-[A-Z0-9-]+)?$")
"""A TCGA sample or aliquot barcode; groups: the case barcode, the sample type, the vial."""


def parse_sample_barcode(barcode: str) -> tuple[str, str]:
    """Split a TCGA sample/aliquot barcode into (12-char case barcode, 2-digit sample type)."""
    m = SAMPLE_BARCODE_RE.match(str(barcode).strip())
    if m is None:
        raise ValueError(
            f"not a TCGA sample barcode: {barcode!r} (expected TCGA-XX-XXXX-NN[V][-...])"
        )
    return m.group(1), m.group(2)


def choose_samples(
    sample_ids: Iterable[str],
    *,
    sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES,
    source: str = "",
) -> dict[str, str]:
    """Pick one sample per case: first allowed type in `sample_types` order, then smallest barcode.

    Returns {sample_id: case_id} for the chosen samples only; cases with several candidate samples
    and samples of other types are logged, so the choice is deterministic and visible.
    """
    if not sample_types:
        raise ValueError("sample_types must list at least one TCGA sample-type code, e.g. ['01']")
    rank = {t: i for i, t in enumerate(sample_types)}
    by_case: dict[str, list[tuple[int, str]]] = {}
    skipped: list[str] = []
    for sample in sample_ids:
        case, stype = parse_sample_barcode(sample)
        if stype not in rank:
            skipped.append(sample)
            continue
        by_case.setdefault(case, []).append((rank[stype], sample))
    if skipped:
        log.info(
            "%s: ignored %d sample(s) of types not in %s: %s",
            source,
            len(skipped),
            list(sample_types),
            sorted(skipped)[:20],
        )
    chosen: dict[str, str] = {}
    for case, candidates in sorted(by_case.items()):
        candidates.sort()
        pick = candidates[0][1]
        if len(candidates) > 1:
            log.warning(
                "%s: case %s has %d samples %s; using %s (sample-type preference %s, then "
                "smallest barcode)",
                source,
                case,
                len(candidates),
                [s for _, s in candidates],
                pick,
                list(sample_types),
            )
        chosen[pick] = case
    return chosen
