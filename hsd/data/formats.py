"""Event file formats of the real datasets: a writer and a reader for each.

Writers exist so that tests and the simulator produce byte-exact real files; readers go through
tonic's readers wherever those work (tonic 1.7), so the harness reads what tonic users read.

| format            | dataset (release)              | reader                                      |
|-------------------|--------------------------------|---------------------------------------------|
| ATIS `.bin`       | N-Caltech101, N-MNIST          | `tonic.io.read_mnist_file`                  |
| AEDAT 4.0         | CIFAR10-DVS (tonic's release)  | `tonic.io.read_aedat4` (needs `aedat`)      |
| AEDAT 2.0 `.aedat`| CIFAR10-DVS (original release) | tonic's AEDAT header + record parser, then  |
|                   |                                | SpikingJelly's axis flip (see below)        |
| `.npy` (N, 4)     | DVS-Gesture (tonic's release)  | `np.load` as in tonic's `DVSGesture`        |
| AEDAT 3.1         | DVS-Gesture (original release) | our own (tonic's `read_dvs_ibm` is broken)  |

All readers return EVENT_DTYPE arrays (t in microseconds) and raise DatasetError naming the file
for a truncated or corrupt file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import tonic.io

from .events import EVENT_DTYPE, DatasetError, as_events, make_events

# --------------------------------------------------------------------------------------------
# ATIS .bin (N-MNIST / N-Caltech101; Orchard et al. 2015): 5 bytes per event, no header.
#   b0 = x, b1 = y, b2 = (p << 7) | t[22:16], b3 = t[15:8], b4 = t[7:0]   (t in us, 23 bits)
# y = 240 marks a timestamp-overflow event: the reference reader (Orchard's eventvision.py, and
# tonic which copies it) adds 2**13 us to the timestamps of that event and all later ones.
# --------------------------------------------------------------------------------------------

ATIS_T_BITS = 23
ATIS_OVERFLOW_Y = 240
ATIS_OVERFLOW_STEP = 2**13  # what the reference reader adds per overflow event


def write_atis_bin(path: str | Path, events: np.ndarray) -> None:
    """Write events as an ATIS `.bin` file.

    Timestamps >= 2**23 us are encoded with overflow events (y = 240), each worth 2**13 us to
    the reference reader; that needs events in time order, so unsorted events whose timestamps
    overflow are rejected. x and y must lie in 0..255 and y must not be 240 (reserved).
    """
    ev = as_events(events)
    x, y, t, p = (ev[k].astype(np.int64) for k in ("x", "y", "t", "p"))
    if len(ev) and (x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 255):
        raise ValueError("ATIS .bin stores x and y in one byte each (0..255)")
    if np.any(y == ATIS_OVERFLOW_Y):
        raise ValueError("ATIS .bin reserves y = 240 for timestamp-overflow events")
    if len(ev) and t.min() < 0:
        raise ValueError("ATIS .bin timestamps must be >= 0")
    n_over = np.zeros(len(ev), dtype=np.int64)  # overflow events before each event
    if len(ev) and t.max() >= 2**ATIS_T_BITS:
        if np.any(np.diff(t) < 0):
            raise ValueError(
                "timestamps >= 2**23 us need overflow events, which need time-ordered events; "
                "sort the events first"
            )
        n_over = np.maximum(0, -(-(t - (2**ATIS_T_BITS - 1)) // ATIS_OVERFLOW_STEP))
    raw_t = t - n_over * ATIS_OVERFLOW_STEP
    rec = np.empty((len(ev), 5), dtype=np.uint8)
    rec[:, 0] = x
    rec[:, 1] = y
    rec[:, 2] = (p << 7) | (raw_t >> 16)
    rec[:, 3] = (raw_t >> 8) & 0xFF
    rec[:, 4] = raw_t & 0xFF
    if len(ev) and n_over[-1] > 0:
        # Overflow markers (y = 240, other bytes 0) go right before the first event that needs
        # them: event i lands at row i + n_over[i], every other row is a marker.
        out = np.zeros((len(ev) + int(n_over[-1]), 5), dtype=np.uint8)
        out[:, 1] = ATIS_OVERFLOW_Y
        out[np.arange(len(ev)) + n_over] = rec
        rec = out
    Path(path).write_bytes(rec.tobytes())


def read_atis_bin(path: str | Path) -> np.ndarray:
    """Read an ATIS `.bin` file with tonic's reader; raw sensor coordinates (no shift to 0)."""
    path = Path(path)
    size = _file_size(path)
    if size % 5:
        raise DatasetError(
            f"{path}: truncated ATIS .bin file ({size} bytes is not a multiple of 5 bytes per "
            "event); re-download or re-extract the dataset"
        )
    ev = tonic.io.read_mnist_file(str(path), dtype=EVENT_DTYPE)
    return np.ascontiguousarray(ev)


# --------------------------------------------------------------------------------------------
# AEDAT 4.0 (iniVation DV; tonic's CIFAR10-DVS release):
#   "#!AER-DAT4.0\r\n", u32 LE header length, IOHeader flatbuffer (compression, data-table
#   position, XML description naming each stream's type and sizeX/sizeY), then packets:
#   i32 stream id, u32 byte length, a size-prefixed flatbuffer with file identifier "EVTS":
#   table EventPacket { elements: [Event] } with struct Event { t: i64; x: i16; y: i16; on: bool }
#   (16 bytes with padding). We write uncompressed files without a data table (position -1),
#   which the format allows; readers then read packets until the end of the file.
# Flatbuffer offsets are self-relative: a uoffset u at byte a points to a + u; a table's
# first i32 s says its vtable is at table - s; alignment is counted from the buffer start.
# --------------------------------------------------------------------------------------------

AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"

_AEDAT4_DESCRIPTION = (
    '<dv version="2.2">\n'
    ' <node name="outInfo" path="/mainloop/Recorder/outInfo/">\n'
    '  <node name="0" path="/mainloop/Recorder/outInfo/0/">\n'
    '   <attr key="compression" type="string">NONE</attr>\n'
    '   <attr key="originalModuleName" type="string">hsd-harness</attr>\n'
    '   <attr key="originalOutputName" type="string">events</attr>\n'
    '   <attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>\n'
    '   <attr key="typeIdentifier" type="string">EVTS</attr>\n'
    '   <node name="info" path="/mainloop/Recorder/outInfo/0/info/">\n'
    '    <attr key="sizeX" type="int">{w}</attr>\n'
    '    <attr key="sizeY" type="int">{h}</attr>\n'
    '    <attr key="source" type="string">hsd-harness</attr>\n'
    "   </node>\n"
    "  </node>\n"
    " </node>\n"
    "</dv>\n"
)


def _ioheader_flatbuffer(description: str) -> bytes:
    """table Ioheader { compression: i32 = 0; file_data_position: i64 = -1; description: string }"""
    text = description.encode()
    table = 24  # 8-aligned so that the i64 field at table + 8 is 8-aligned
    buf = bytearray()
    buf += struct.pack("<I", table)  # root uoffset at 0
    buf += b"IOHE"  # file identifier
    buf += struct.pack("<5H", 10, 20, 4, 8, 16)  # vtable at 8: sizes, then field offsets
    buf += bytes(table - len(buf))
    buf += struct.pack("<i", table - 8)  # soffset to the vtable
    buf += struct.pack("<i", 0)  # compression: None
    buf += struct.pack("<q", -1)  # file_data_position: no data table
    buf += struct.pack("<I", 4)  # uoffset (at table + 16) to the string at table + 20
    buf += struct.pack("<I", len(text)) + text + b"\0"
    buf += bytes(-len(buf) % 8)
    return bytes(buf)


def _events_packet_flatbuffer(ev: np.ndarray) -> bytes:
    """Size-prefixed "EVTS" flatbuffer holding one EventPacket with the given events."""
    packed = np.zeros(
        len(ev), dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")]
    )
    packed["t"], packed["x"], packed["y"], packed["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    head = bytearray()
    head += struct.pack("<I", 0)  # size prefix, patched below
    head += struct.pack("<I", 20 - 4)  # root uoffset at 4 -> table at 20
    head += b"EVTS"
    head += struct.pack("<3H", 6, 8, 4)  # vtable at 12
    head += bytes(20 - len(head))
    head += struct.pack("<i", 20 - 12)  # table at 20: soffset to the vtable
    head += struct.pack("<I", 28 - 24)  # uoffset at 24 -> vector at 28
    head += struct.pack("<I", len(ev))  # vector length; elements start at 32 (8-aligned)
    body = bytes(head) + packed.tobytes()
    return struct.pack("<I", len(body) - 4) + body[4:]


def write_aedat4(
    path: str | Path,
    events: np.ndarray,
    sensor_size: tuple[int, int] | tuple[int, int, int] = (128, 128),
    *,
    packet_events: int = 65536,
) -> None:
    """Write events as an uncompressed AEDAT 4.0 file with one event stream (id 0)."""
    ev = as_events(events)
    header = _ioheader_flatbuffer(
        _AEDAT4_DESCRIPTION.format(w=int(sensor_size[0]), h=int(sensor_size[1]))
    )
    with open(path, "wb") as f:
        f.write(AEDAT4_MAGIC)
        f.write(struct.pack("<I", len(header)))
        f.write(header)
        for start in range(0, len(ev), packet_events):
            packet = _events_packet_flatbuffer(ev[start : start + packet_events])
            f.write(struct.pack("<iI", 0, len(packet)))
            f.write(packet)


def read_aedat4(path: str | Path) -> np.ndarray:
    """Read the event stream of an AEDAT 4.0 file with `tonic.io.read_aedat4`."""
    path = Path(path)
    _file_size(path)
    with open(path, "rb") as f:
        if f.read(len(AEDAT4_MAGIC)) != AEDAT4_MAGIC:
            raise DatasetError(f"{path}: not an AEDAT 4.0 file (no '#!AER-DAT4.0' magic)")
    try:
        raw = tonic.io.read_aedat4(str(path))
    except ValueError as e:
        if "at least one array" in str(e):  # a stream without packets: empty recording
            return np.empty(0, dtype=EVENT_DTYPE)
        raise DatasetError(f"{path}: corrupt AEDAT 4.0 file ({e})") from e
    except Exception as e:  # the aedat decoder raises RuntimeError/OSError on bad bytes
        raise DatasetError(
            f"{path}: truncated or corrupt AEDAT 4.0 file ({e}); re-download the dataset"
        ) from e
    return as_events(raw)


# --------------------------------------------------------------------------------------------
# AEDAT 2.0 (jAER; CIFAR10-DVS original release, what SpikingJelly reads): '#' header lines,
# then big-endian u32 pairs (address, timestamp in us). Address bit 0 = raw polarity,
# bits 1..7 = raw x, bits 8..14 = raw y. SpikingJelly (and so the HSD authors' code) maps them to
# x = 127 - raw_y, y = 127 - raw_x, p = 1 - raw_p; we apply the same mapping so frames match.
# --------------------------------------------------------------------------------------------

AEDAT2_HEADER = (
    b"#!AER-DAT2.0\r\n"
    b"# This is a raw AE data file - do not edit\r\n"
    b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
    b"# Timestamps tick is 1 us\r\n"
    b"# written by hsd-harness (hsd/data/formats.py)\r\n"
)


def write_aedat2(path: str | Path, events: np.ndarray) -> None:
    """Write events (x, y in 0..127, as SpikingJelly reads them) as a CIFAR10-DVS `.aedat`."""
    ev = as_events(events)
    x, y, t, p = (ev[k].astype(np.int64) for k in ("x", "y", "t", "p"))
    if len(ev) and (min(x.min(), y.min()) < 0 or max(x.max(), y.max()) > 127):
        raise ValueError("CIFAR10-DVS AEDAT 2.0 addresses hold x and y in 0..127")
    if len(ev) and (t.min() < 0 or t.max() >= 2**32):
        raise ValueError("AEDAT 2.0 timestamps are unsigned 32-bit microseconds")
    raw_x, raw_y, raw_p = 127 - y, 127 - x, 1 - p
    rec = np.empty((len(ev), 2), dtype=">u4")
    rec[:, 0] = (raw_y << 8) | (raw_x << 1) | raw_p
    rec[:, 1] = t
    Path(path).write_bytes(AEDAT2_HEADER + rec.tobytes())


def read_aedat2(path: str | Path) -> np.ndarray:
    """Read a CIFAR10-DVS AEDAT 2.0 file.

    tonic's `read_dvs_128` is broken in tonic 1.7 ("too many values to unpack": the header
    reader now returns three values), so we call the two tonic functions it wraps ourselves and
    then apply SpikingJelly's axis mapping.
    """
    path = Path(path)
    size = _file_size(path)
    with open(path, "rb") as f:
        if not f.read(10).startswith(b"#!AER-DAT2"):
            raise DatasetError(f"{path}: not an AEDAT 2.0 file (no '#!AER-DAT2.0' first line)")
    version, start, _ = tonic.io.read_aedat_header_from_file(str(path))
    if (size - start) % 8:
        raise DatasetError(
            f"{path}: truncated AEDAT 2.0 file ({size - start} data bytes is not a multiple of "
            "8 bytes per event); re-download the dataset"
        )
    raw = tonic.io.get_aer_events_from_file(str(path), version, start)
    addr = raw["address"].astype(np.int64)
    raw_p, raw_x, raw_y = addr & 1, (addr >> 1) & 0x7F, (addr >> 8) & 0x7F
    return make_events(127 - raw_y, 127 - raw_x, raw["timeStamp"].astype(np.int64), 1 - raw_p)


# --------------------------------------------------------------------------------------------
# DVS-Gesture, tonic's release: one `.npy` per gesture, an (N, 4) integer array with columns
# x, y, p, t and t in milliseconds (tonic multiplies by 1000 when loading). tonic has no reader
# function for it (the loading is inside `DVSGesture.__getitem__`), so we do the same here.
# --------------------------------------------------------------------------------------------


def write_gesture_npy(path: str | Path, events: np.ndarray) -> None:
    """Write events as tonic's DVS-Gesture `.npy`; t is floored to whole milliseconds.
    int32 columns: t in ms fits for 24 days; readers widen to int64 before scaling to us."""
    ev = as_events(events)
    if len(ev) and ev["t"].max() // 1000 >= 2**31:
        raise ValueError("DVS-Gesture .npy: t in ms must fit int32")
    arr = np.empty((len(ev), 4), dtype=np.int32)
    arr[:, 0], arr[:, 1], arr[:, 2] = ev["x"], ev["y"], ev["p"]
    arr[:, 3] = ev["t"] // 1000
    np.save(path, arr, allow_pickle=False)


def read_gesture_npy(path: str | Path) -> np.ndarray:
    """Read a tonic DVS-Gesture `.npy` (x, y, p, t[ms]) into events with t in microseconds."""
    path = Path(path)
    _file_size(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(
            f"{path}: truncated or corrupt .npy file ({e}); re-download the dataset"
        ) from e
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DatasetError(f"{path}: expected an (N, 4) array of x, y, p, t; got {arr.shape}")
    arr = arr.astype(np.int64)
    return make_events(arr[:, 0], arr[:, 1], arr[:, 3] * 1000, arr[:, 2])


# --------------------------------------------------------------------------------------------
# AEDAT 3.1 (DVS-Gesture original release): '#' header lines ending with "#!END-HEADER\r\n",
# then packets: 28-byte header (i16 type, i16 source, i32 event size, i32 ts offset,
# i32 ts overflow, i32 capacity, i32 number, i32 valid) and capacity * size bytes of events.
# Polarity events (type 1, 8 bytes): u32 data (bit 0 valid, bit 1 polarity, bits 2..16 y,
# bits 17..31 x), i32 timestamp; the full timestamp is (ts overflow << 31) | timestamp.
# tonic's `read_dvs_ibm` is broken in 1.7 and ignores the packet type and valid bit, so we read
# this format ourselves.
# --------------------------------------------------------------------------------------------

AEDAT31_HEADER = (
    b"#!AER-DAT3.1\r\n"
    b"#Format: RAW\r\n"
    b"#Source 1: DVS128\r\n"
    b"#Written by hsd-harness (hsd/data/formats.py)\r\n"
    b"#!END-HEADER\r\n"
)
_POLARITY_EVENT = 1


def write_aedat31(path: str | Path, events: np.ndarray, *, packet_events: int = 4096) -> None:
    """Write time-ordered events as AEDAT 3.1 polarity-event packets (source id 1)."""
    ev = as_events(events)
    t = ev["t"].astype(np.int64)
    if len(ev) and (t.min() < 0 or np.any(np.diff(t) < 0)):
        raise ValueError("AEDAT 3.1 needs time-ordered events with t >= 0")
    with open(path, "wb") as f:
        f.write(AEDAT31_HEADER)
        for start in range(0, len(ev), packet_events):
            chunk = ev[start : start + packet_events]
            ct = chunk["t"].astype(np.int64)
            overflow = int(ct[0] >> 31)
            if int(ct[-1] >> 31) != overflow:  # split at the overflow boundary
                cut = int(np.searchsorted(ct >> 31, overflow, side="right"))
                write_parts = [chunk[:cut], chunk[cut:]]
            else:
                write_parts = [chunk]
            for part in write_parts:
                pt = part["t"].astype(np.int64)
                n = len(part)
                data = np.empty((n, 2), dtype="<u4")
                data[:, 0] = (
                    (part["x"].astype(np.uint32) << 17)
                    | (part["y"].astype(np.uint32) << 2)
                    | (part["p"].astype(np.uint32) << 1)
                    | 1
                )
                data[:, 1] = pt & 0x7FFFFFFF
                f.write(
                    struct.pack("<hhiiiiii", _POLARITY_EVENT, 1, 8, 4, int(pt[0] >> 31), n, n, n)
                )
                f.write(data.tobytes())


def read_aedat31(path: str | Path) -> np.ndarray:
    """Read the valid polarity events of an AEDAT 3.1 file (other packet types are skipped)."""
    path = Path(path)
    data = path.read_bytes() if path.is_file() else _file_size(path)
    if not data.startswith(b"#!AER-DAT3"):
        raise DatasetError(f"{path}: not an AEDAT 3.x file (no '#!AER-DAT3' first line)")
    end = data.find(b"#!END-HEADER\r\n")
    if end < 0:
        raise DatasetError(f"{path}: AEDAT 3.1 header has no '#!END-HEADER' line")
    pos = end + len(b"#!END-HEADER\r\n")
    parts = []
    while pos < len(data):
        if pos + 28 > len(data):
            raise DatasetError(f"{path}: truncated AEDAT 3.1 file (partial packet header)")
        etype, _src, esize, tsoff, tsover, cap, _num, _valid = struct.unpack_from(
            "<hhiiiiii", data, pos
        )
        pos += 28
        nbytes = cap * esize
        if cap < 0 or esize <= 0 or pos + nbytes > len(data):
            raise DatasetError(
                f"{path}: truncated or corrupt AEDAT 3.1 file (packet of {cap} x {esize} bytes "
                f"at byte {pos - 28} runs past the end of the file)"
            )
        if etype == _POLARITY_EVENT:
            if esize != 8:
                raise DatasetError(f"{path}: polarity events of {esize} bytes (expected 8)")
            rec = np.frombuffer(data, dtype="<u4", count=2 * cap, offset=pos).reshape(cap, 2)
            word = rec[:, 0].astype(np.int64)
            valid = (word & 1) == 1
            t = (np.int64(tsover) << 31) | rec[:, 1].astype(np.int64)
            parts.append(
                make_events((word >> 17) & 0x7FFF, (word >> 2) & 0x7FFF, t, (word >> 1) & 1)[valid]
            )
        pos += nbytes
    return np.concatenate(parts) if parts else np.empty(0, dtype=EVENT_DTYPE)


def write_gesture_labels_csv(path: str | Path, segments: list[tuple[int, int, int]]) -> None:
    """Write a DVS-Gesture `*_labels.csv`: rows (class 1..11, start_us, end_us)."""
    lines = ["class,startTime_usec,endTime_usec"] + [f"{c},{s},{e}" for c, s, e in segments]
    Path(path).write_text("\r\n".join(lines) + "\r\n")


def read_gesture_labels_csv(path: str | Path) -> list[tuple[int, int, int]]:
    """Read a DVS-Gesture `*_labels.csv` into (class 1..11, start_us, end_us) rows."""
    path = Path(path)
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        line = line.strip()
        if not line or (i == 0 and line.lower().startswith("class")):
            continue
        try:
            c, s, e = (int(v) for v in line.split(","))
        except ValueError as err:
            raise DatasetError(f"{path}: line {i + 1} is not 'class,start,end': {line!r}") from err
        rows.append((c, s, e))
    return rows


def _file_size(path: Path) -> int:
    if not path.is_file():
        raise DatasetError(f"{path}: event file does not exist")
    return path.stat().st_size
