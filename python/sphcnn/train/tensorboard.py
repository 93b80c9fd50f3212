"""A minimal TensorBoard event-file writer for scalar summaries (no TensorFlow).

Format (TensorFlow's TFRecord framing of Event protocol buffers):
  record = uint64 length, uint32 masked_crc32c(length), data, uint32 masked_crc32c(data)
  masked_crc32c(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8  (mod 2^32)
  Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
  Summary { repeated Value value = 1; }
  Value   { string tag = 1; float simple_value = 2; }
The first record carries file_version "brain.Event:2". CRC-32C is the
Castagnoli polynomial (reflected 0x82F63B78).
"""

from __future__ import annotations

import pathlib
import socket
import struct
import time


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint((number << 3) | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def _event(step: int, wall_time: float, *, file_version: str | None = None, scalars: dict | None = None) -> bytes:
    data = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        data += _field(3, 2, file_version.encode())
    if scalars:
        summary = b"".join(
            _field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", float(value))))
            for tag, value in scalars.items()
        )
        data += _field(5, 2, summary)
    return data


class EventWriter:
    """Appends scalar summaries to events.out.tfevents.<time>.<host> in `logdir`."""

    def __init__(self, logdir: pathlib.Path):
        logdir.mkdir(parents=True, exist_ok=True)
        self.path = logdir / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        self._file = open(self.path, "ab")
        self._write(_event(0, time.time(), file_version="brain.Event:2"))

    def _write(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", masked_crc32c(header)) + data
                         + struct.pack("<I", masked_crc32c(data)))
        self._file.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._write(_event(step, time.time(), scalars=values))

    def close(self) -> None:
        self._file.close()
