"""Structural checks of JPEG tile streams: the damage libjpeg only warns about.

libjpeg-turbo reports an entropy-coded segment that runs out early ("premature end of data
segment"), bytes left after the last MCU ("N extraneous bytes before marker") or restart
markers out of order as *warnings* and decodes anyway. imagecodecs (like Pillow, cv2 and
torchvision) drops those warnings and returns plausible but wrong pixels, whereas openslide
treats every libjpeg warning as an error and refuses the tile. So before the fast path trusts
its decoder, the compressed bytes are checked here: the marker sequence (SOI, frame, scan,
EOI), every 0xFF inside entropy-coded data stuffed or a restart marker, the restart markers in
order and as many as the DRI interval and MCU count need, no empty restart interval, and no
run of zero bytes where entropy-coded data should be (zeroed blocks of a damaged file; a
Huffman coder rarely emits that many zero bits in a row). After decoding, `ends_in_fill` looks
for the grey libjpeg paints where data ran out. A tile that fails any check is left to the
slide reader, whose verdict stands (docs/slides.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["ZERO_RUN", "JpegCheck", "McuGrid", "check_jpeg", "ends_in_fill", "restart_interval"]

#: Zero bytes in a row inside entropy-coded data that make a stream suspect: 64 zero bits. Good
#: tiles coded with the standard Huffman tables had at most 5 (docs/slides.md); optimised tables
#: code flat areas as zeros, so such tiles go to the slide reader (slower, still right).
ZERO_RUN = 8

_SOI, _EOI, _SOS, _DRI = 0xD8, 0xD9, 0xDA, 0xDD
_RST0, _RST7 = 0xD0, 0xD7
# start-of-frame markers (C4 DHT, C8 JPG and CC DAC share the range but are not frames)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SEQUENTIAL = frozenset({0xC0, 0xC1})  # baseline / extended: MCU count of a scan is known
_NONE = np.zeros(0, np.int64)
# (stream bytes up to the first scan's data, tables' restart interval) -> (restart interval of
# that scan, its MCU grid): tiles of a level share their headers, so each is parsed once
_HEADERS: dict[tuple[bytes, int], tuple[int, McuGrid | None]] = {}
_MAX_HEADERS = 256


@dataclass(frozen=True)
class _Frame:
    """The SOF fields the MCU count needs."""

    code: int
    width: int
    height: int
    sampling: dict[int, tuple[int, int]]  # component id -> (h, v) sampling factors


class McuGrid(NamedTuple):
    """The MCU layout of a single sequential scan and its restart interval."""

    mcu_width: int
    mcu_height: int
    per_row: int
    n_mcus: int
    interval: int  # MCUs per restart interval; 0 = no restart markers


class JpegCheck(NamedTuple):
    """The outcome of `check_jpeg`: what looks damaged (None: nothing) and the MCU grid."""

    problem: str | None
    grid: McuGrid | None = None


def _frame(code: int, seg: bytes) -> _Frame | str:
    """The frame header of a SOF segment, or what is wrong with it."""
    if len(seg) < 6 or len(seg) < 6 + 3 * seg[5]:
        return f"SOF segment of {len(seg)} bytes is too short"
    height, width, n = int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5]
    sampling = {seg[6 + 3 * i]: (seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15) for i in range(n)}
    if not n or width == 0 or height == 0 or any(0 in hv for hv in sampling.values()):
        return f"SOF declares {width}x{height} with {n} components {sampling}"
    return _Frame(code, width, height, sampling)


def _ceil(a: int, b: int) -> int:
    """a / b rounded up."""
    return -(-a // b)


def _grid(frame: _Frame, ids: list[int], interval: int) -> McuGrid | None:
    """The MCU grid of a sequential scan of components `ids`; None when it is not known here."""
    if frame.code not in _SEQUENTIAL or not ids or any(i not in frame.sampling for i in ids):
        return None
    hmax = max(h for h, _ in frame.sampling.values())
    vmax = max(v for _, v in frame.sampling.values())
    if len(ids) == 1:  # non-interleaved: one block of that component per MCU
        h, v = frame.sampling[ids[0]]
        mw, mh = 8 * hmax // h, 8 * vmax // v
    else:
        mw, mh = 8 * hmax, 8 * vmax
    per_row = _ceil(frame.width, mw)
    return McuGrid(mw, mh, per_row, per_row * _ceil(frame.height, mh), interval)


def _zero_run_at(data: bytes, start: int, end: int, zero_run: int) -> int:
    """Offset of a run of `zero_run` zero bytes in data[start:end], or -1."""
    if zero_run < 7:  # shorter runs need not cover an aligned 4-byte word
        return data.find(bytes(zero_run), start, end) if zero_run > 0 else -1
    # A run of >= 7 zero bytes covers an aligned zero 4-byte word: look for those (fast, and
    # rare in entropy-coded data), then at the bytes around each.
    a0 = start + (-start % 4)
    words = np.frombuffer(data, np.uint32, count=max(0, (end - a0) // 4), offset=a0)
    if np.count_nonzero(words) == len(words):
        return -1
    for w in np.flatnonzero(words == 0).tolist():
        p = a0 + 4 * w
        at = data.find(bytes(zero_run), max(start, p - zero_run + 4), min(end, p + zero_run))
        if at >= 0:
            return at
    return -1


def _scan_problem(
    data: bytes, start: int, interval: int, grid: McuGrid | None, zero_run: int
) -> tuple[int, str | None]:
    """Check one scan's entropy-coded data from `start`; (offset of the marker ending it, why)."""
    arr = np.frombuffer(data, np.uint8)
    # every 0xFF followed by a byte other than 0 (stuffing): restart markers, fill, the end
    pair = (arr[start:-1] == 0xFF) & (arr[start + 1 :] != 0)
    if len(pair) and pair[-1] and arr[-1] == _EOI and np.count_nonzero(pair) == 1:
        end = len(data) - 2  # the common case: no restart markers, EOI last
        problem = _restart_problem(_NONE, _NONE, start, end, interval, grid)
    else:
        hits = start + np.flatnonzero(pair)
        nxt = arr[hits + 1]
        rst = (nxt >= _RST0) & (nxt <= _RST7)
        ends = np.flatnonzero((nxt != 0xFF) & ~rst)
        if not len(ends):
            return len(data), "no marker ends the entropy-coded data (EOI missing)"
        stop = int(ends[0])
        end = int(hits[stop])
        at, codes = hits[:stop][rst[:stop]], nxt[:stop][rst[:stop]]
        problem = _restart_problem(at, codes, start, end, interval, grid)
    if problem:
        return end, problem
    at = _zero_run_at(data, start, end, zero_run)
    if at >= 0:
        return end, f"{zero_run} or more zero bytes at byte {at} of entropy-coded data (zeroed?)"
    return end, None


def _restart_problem(
    at: np.ndarray, codes: np.ndarray, start: int, end: int, interval: int, grid: McuGrid | None
) -> str | None:
    """What is wrong with a scan's restart markers (offsets `at`, codes) or intervals, or None."""
    if not len(at) and not interval:
        return None if end > start else "no entropy-coded data"
    seq = codes.astype(np.int64) - _RST0
    wrong = np.flatnonzero(seq != np.arange(len(seq)) % 8)
    if len(wrong):
        k = int(wrong[0])
        return f"restart marker {k} is RST{seq[k]}, expected RST{k % 8}"
    if (np.append(at, end) - np.insert(at + 2, 0, start) < 1).any():
        return "an empty restart interval"
    if not interval:
        return "restart markers without a restart interval (DRI)"
    if grid is None:  # MCU count not known here (progressive, multi-scan): order checked only
        return None
    need = _ceil(grid.n_mcus, interval) - 1
    if len(seq) != need:
        return (
            f"{len(seq)} restart markers where {grid.n_mcus} MCUs in intervals of "
            f"{interval} need {need}"
        )
    return None


def _walk(data: bytes, interval: int, zero_run: int, tables: bool) -> tuple[int, JpegCheck]:
    """Walk the marker segments of a stream: (restart interval in force at the end, outcome)."""
    if data[:2] != b"\xff\xd8":
        return interval, JpegCheck("no SOI marker at the start")
    initial = interval
    pos, n, scans = 2, len(data), 0
    frame: _Frame | None = None
    grid: McuGrid | None = None
    while True:
        if pos + 2 > n:
            return interval, JpegCheck("the stream ends without an EOI marker")
        if data[pos] != 0xFF:
            return interval, JpegCheck(f"byte {pos} is 0x{data[pos]:02x}, not a marker")
        code = data[pos + 1]
        if code == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if code == _EOI:
            if not (scans or tables):
                return interval, JpegCheck("EOI before any scan")
            return interval, JpegCheck(None, grid if scans == 1 else None)
        if code == _SOI or code == 0 or _RST0 <= code <= _RST7:
            return interval, JpegCheck(f"unexpected marker 0x{code:02x} at byte {pos}")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > n:
            return interval, JpegCheck(f"marker 0x{code:02x} at byte {pos} overruns the stream")
        seg = data[pos + 4 : pos + 2 + length]
        pos += 2 + length
        if code == _DRI and len(seg) >= 2:
            interval = int.from_bytes(seg[:2], "big")
        elif code in _SOF:
            got = _frame(code, seg)
            if isinstance(got, str):
                return interval, JpegCheck(got)
            frame = got
        elif code == _SOS:
            if tables or frame is None:
                return interval, JpegCheck("a scan without a frame header")
            if not seg or len(seg) < 4 + 2 * seg[0]:
                return interval, JpegCheck(f"SOS segment of {len(seg)} bytes is too short")
            ids = [seg[1 + 2 * i] for i in range(seg[0])]
            scans += 1
            grid = _grid(frame, ids, interval)
            if scans == 1:
                if len(_HEADERS) >= _MAX_HEADERS:  # headers of slides read long ago
                    _HEADERS.clear()
                _HEADERS[(data[:pos], initial)] = (interval, grid)
            pos, problem = _scan_problem(data, pos, interval, grid, zero_run)
            if problem:
                return interval, JpegCheck(f"scan {scans}: {problem}")


def restart_interval(tables: bytes | None) -> int:
    """The restart interval (MCUs) a shared JPEGTables stream sets; 0 when none."""
    if not tables:
        return 0
    interval, outcome = _walk(tables, 0, 0, tables=True)
    if outcome.problem:
        raise ValueError(f"JPEGTables: {outcome.problem}")
    return interval


def check_jpeg(data: bytes, *, interval: int = 0, zero_run: int = ZERO_RUN) -> JpegCheck:
    """Whether a (possibly abbreviated) JPEG stream looks damaged, without decoding it.

    Checks the marker structure and restart markers whose faults libjpeg only warns about.
    `interval` is the restart interval set by shared tables (a DRI in the stream overrides it).
    """
    sos = data.find(b"\xff\xda")
    if 2 <= sos <= len(data) - 4:  # a header seen before: check the entropy-coded data only
        start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
        hit = _HEADERS.get((data[:start], interval))
        if hit is not None:
            end, problem = _scan_problem(data, start, hit[0], hit[1], zero_run)
            if problem:
                return JpegCheck(f"scan 1: {problem}")
            if end + 1 < len(data) and data[end + 1] == _EOI:
                return JpegCheck(None, hit[1])
    return _walk(data, interval, zero_run, tables=False)[1]


def ends_in_fill(tile: np.ndarray, grid: McuGrid | None = None) -> bool:
    """Whether a decoded tile shows libjpeg's uniform grey-128 fill: its data ran out early.

    When entropy-coded data ends before the last MCU of the image (or of a restart interval),
    libjpeg warns ("premature end of data segment") and leaves the remaining MCUs' coefficients
    zero: exactly 128 in every channel up to the end of the interval. Real tissue almost never
    has an exactly grey 8x8 corner or MCU, so the last MCU of each interval is looked at.
    """
    if tile[-1, -1, 0] == 128 and (tile[-8:, -8:] == 128).all():
        return True
    if grid is None or not 0 < grid.interval < grid.n_mcus:
        return False
    last = np.arange(grid.interval - 1, grid.n_mcus - 1, grid.interval)
    ys, xs = (last // grid.per_row) * grid.mcu_height, (last % grid.per_row) * grid.mcu_width
    grey = (tile[ys, xs] == 128).all(-1)  # first pixel of each such MCU, then the whole MCU
    h, w = grid.mcu_height, grid.mcu_width
    cand = zip(ys[grey].tolist(), xs[grey].tolist(), strict=True)
    return any(bool((tile[y : y + h, x : x + w] == 128).all()) for y, x in cand)
