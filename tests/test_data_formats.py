"""Real event-file formats: each writer's output read back by the real (tonic) reader, bit-exact."""

import struct

import numpy as np
import pytest
import tonic.io

from hsd.data import formats
from hsd.data.events import EVENT_DTYPE, DatasetError, make_events, validate_events


def random_events(n, w, h, t_max, seed=0, sort=True):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, t_max, n)
    return make_events(
        rng.integers(0, w, n), rng.integers(0, h, n), np.sort(t) if sort else t,
        rng.integers(0, 2, n),
    )  # fmt: skip


def test_event_dtype_is_tonics():
    assert EVENT_DTYPE == tonic.io.events_struct
    ev = make_events([1], [2], [3], [1])
    assert ev.dtype == EVENT_DTYPE and ev["p"][0] == np.True_


def test_atis_bin_round_trip_and_bytes(tmp_path):
    ev = random_events(500, 240, 180, 2**23, sort=False)  # any order below the overflow
    f = tmp_path / "a.bin"
    formats.write_atis_bin(f, ev)
    assert f.stat().st_size == 5 * len(ev)
    assert np.array_equal(formats.read_atis_bin(f), ev)
    # the ATIS .bin byte layout: x, y, p<<7 | t[22:16], t[15:8], t[7:0]
    formats.write_atis_bin(f, make_events([1], [2], [0x123456], [1]))
    assert f.read_bytes() == bytes([1, 2, 0x80 | 0x12, 0x34, 0x56])


def test_atis_bin_timestamp_overflow(tmp_path):
    t = np.array([5, 2**23 - 1, 2**23, 2**23 + 8191, 3 * 2**23 + 77, 10**8])
    ev = make_events(np.arange(6), np.arange(6) + 100, t, [1, 0, 1, 0, 1, 0])
    f = tmp_path / "o.bin"
    formats.write_atis_bin(f, ev)
    raw = np.frombuffer(f.read_bytes(), np.uint8).reshape(-1, 5)
    assert (raw[:, 1] == 240).sum() == len(raw) - 6  # overflow markers were inserted
    assert np.array_equal(formats.read_atis_bin(f), ev)
    with pytest.raises(ValueError, match="time-ordered"):
        formats.write_atis_bin(f, ev[::-1])
    with pytest.raises(ValueError, match="240"):
        formats.write_atis_bin(f, make_events([0], [240], [0], [0]))


def test_aedat4_round_trip_through_tonic_and_aedat(tmp_path):
    import aedat

    ev = random_events(1000, 128, 128, 10**7)
    f = tmp_path / "c.aedat4"
    formats.write_aedat4(f, ev, (128, 128), packet_events=300)  # 4 packets
    assert np.array_equal(formats.read_aedat4(f), ev)
    raw = tonic.io.read_aedat4(str(f))  # tonic's own reader, as its CIFAR10DVS class calls it
    assert np.array_equal(raw["t"], ev["t"]) and np.array_equal(raw["x"], ev["x"])
    streams = aedat.Decoder(str(f)).id_to_stream()
    assert streams[0]["type"] == "events" and streams[0]["width"] == 128
    assert streams[0]["height"] == 128
    formats.write_aedat4(f, ev[:0])
    assert len(formats.read_aedat4(f)) == 0  # an empty recording reads as empty


def test_aedat2_round_trip_and_spikingjelly_mapping(tmp_path):
    ev = random_events(800, 128, 128, 2**32)
    f = tmp_path / "c.aedat"
    formats.write_aedat2(f, ev)
    assert np.array_equal(formats.read_aedat2(f), ev)
    # one event: x = 127 - raw_y, y = 127 - raw_x, p = 1 - raw_p (SpikingJelly's reading)
    formats.write_aedat2(f, make_events([3], [5], [1000], [1]))
    data = f.read_bytes()[len(formats.AEDAT2_HEADER) :]
    assert struct.unpack(">II", data) == ((124 << 8) | (122 << 1) | 0, 1000)
    version, start, _ = tonic.io.read_aedat_header_from_file(str(f))
    assert version == 2.0 and start == len(formats.AEDAT2_HEADER)


def test_gesture_npy_round_trip_quantizes_to_ms(tmp_path):
    ev = random_events(700, 128, 128, 6 * 10**6)
    f = tmp_path / "3.npy"
    formats.write_gesture_npy(f, ev)
    arr = np.load(f)
    assert arr.shape == (700, 4) and np.array_equal(arr[:, 3], ev["t"] // 1000)
    expected = ev.copy()
    expected["t"] = ev["t"] // 1000 * 1000
    assert np.array_equal(formats.read_gesture_npy(f), expected)


def test_aedat31_round_trip_skips_other_packets_and_invalid_events(tmp_path):
    ev = random_events(900, 128, 128, 2**33)  # crosses the 31-bit timestamp overflow
    f = tmp_path / "user01_led.aedat"
    formats.write_aedat31(f, ev, packet_events=256)
    assert np.array_equal(formats.read_aedat31(f), ev)
    # append a special-event packet (type 0) and a polarity packet with one invalid event
    extra = struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 1, 1, 1) + struct.pack("<Ii", 7, 0)
    bad = struct.pack("<hhiiiiii", 1, 1, 8, 4, 4, 1, 1, 0) + struct.pack("<Ii", 0b110, 5)
    f.write_bytes(f.read_bytes() + extra + bad)
    assert np.array_equal(formats.read_aedat31(f), ev)


def test_gesture_labels_csv_round_trip(tmp_path):
    rows = [(1, 80048239, 85092709), (11, 90000000, 95000000)]
    f = tmp_path / "user01_led_labels.csv"
    formats.write_gesture_labels_csv(f, rows)
    assert f.read_text().startswith("class,startTime_usec,endTime_usec")
    assert formats.read_gesture_labels_csv(f) == rows


@pytest.mark.parametrize(
    "write,read,name,cut",
    [
        (formats.write_atis_bin, formats.read_atis_bin, "image_0001.bin", 3),
        (formats.write_aedat4, formats.read_aedat4, "cat_1.aedat4", 5),
        (formats.write_aedat2, formats.read_aedat2, "cifar10_cat_1.aedat", 3),
        (formats.write_gesture_npy, formats.read_gesture_npy, "7.npy", 9),
        (formats.write_aedat31, formats.read_aedat31, "user02_lab.aedat", 5),
    ],
)
def test_truncated_file_error_names_the_file(tmp_path, write, read, name, cut):
    f = tmp_path / name
    write(f, random_events(100, 100, 100, 10**6))
    f.write_bytes(f.read_bytes()[:-cut])
    with pytest.raises(DatasetError, match=name):
        read(f)


def test_missing_file_and_wrong_magic(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        formats.read_aedat4(tmp_path / "nope.aedat4")
    f = tmp_path / "fake.aedat4"
    f.write_bytes(b"not an aedat file")
    with pytest.raises(DatasetError, match="fake.aedat4.*AEDAT 4.0"):
        formats.read_aedat4(f)


def test_validate_events_errors():
    ev = make_events([0, 5], [0, 1], [0, 10], [0, 1])
    assert validate_events(ev, (6, 2, 2)) is ev
    with pytest.raises(DatasetError, match="rec.bin.*outside the sensor"):
        validate_events(ev, (5, 2, 2), source="rec.bin")
    with pytest.raises(DatasetError, match="empty recording"):
        validate_events(ev[:0], source="rec.bin")
