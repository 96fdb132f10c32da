"""Ogg Opus streams (RFC 7845) over the system's libopus, through ctypes.

ctypes lets go of the GIL for the length of each libopus call, so sessions' audio can be encoded and
decoded on worker threads in parallel with each other and with the event loop (sphn's codec holds the
GIL). `OggOpusReader.append_bytes` and `OggOpusWriter.append_pcm` mirror sphn's stream reader and writer:
24 kHz mono float32 in and out, Ogg pages of 20 ms packets.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import zlib

import numpy as np

SAMPLE_RATE = 24000
PACKET_SAMPLES = 480            # 20 ms at 24 kHz
MAX_PACKET_SAMPLES = 2880       # 120 ms, the longest Opus packet
GRANULE_RATE = 48000            # Ogg Opus counts granules at 48 kHz whatever the coding rate
_APPLICATION_VOIP = 2048
_GET_LOOKAHEAD = 4027
_MAX_PACKET_BYTES = 4000


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("opus") or "libopus.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise OSError(f"libopus is not installed ({exc}); on Debian: apt-get install libopus0") from None
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_encode_float.restype = ctypes.c_int32
    lib.opus_encode_float.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int,
                                      ctypes.c_char_p, ctypes.c_int32]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decode_float.restype = ctypes.c_int
    lib.opus_decode_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                      ctypes.POINTER(ctypes.c_float), ctypes.c_int, ctypes.c_int]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_encoder_ctl.restype = ctypes.c_int
    return lib


_LIB = _load()


# Ogg's CRC-32 is zlib's polynomial without zlib's bit reflection, initial value and final xor: it is
# zlib's CRC of the bit-reversed bytes, bit-reversed, so it runs at C speed.
_REVERSED_BITS = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04c11db7, unreflected, initial value 0, no final xor)."""
    reflected = zlib.crc32(data.translate(_REVERSED_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _page(serial: int, sequence: int, granule: int, packet: bytes, header_type: int = 0) -> bytes:
    lacing = [255] * (len(packet) // 255) + [len(packet) % 255]
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, header_type, granule, serial, sequence, 0, len(lacing))
    page = header + bytes(lacing) + packet
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


class OggOpusWriter:
    """Float32 PCM at 24 kHz in, Ogg Opus pages out (one 20 ms packet a page)."""

    def __init__(self, serial: int = 0x41505448) -> None:
        error = ctypes.c_int()
        self._encoder = _LIB.opus_encoder_create(SAMPLE_RATE, 1, _APPLICATION_VOIP, ctypes.byref(error))
        if error.value != 0 or not self._encoder:
            raise RuntimeError(f"opus_encoder_create failed ({error.value})")
        lookahead = ctypes.c_int32()
        _LIB.opus_encoder_ctl(ctypes.c_void_p(self._encoder), _GET_LOOKAHEAD, ctypes.byref(lookahead))
        self._pre_skip = lookahead.value * GRANULE_RATE // SAMPLE_RATE
        self._serial = serial
        self._sequence = 2  # the audio pages follow the two header pages
        self._granule = self._pre_skip
        self._pending = np.zeros(0, dtype=np.float32)
        self._out = ctypes.create_string_buffer(_MAX_PACKET_BYTES)
        self._headers = self._header_pages()

    def _header_pages(self) -> bytes:
        head = struct.pack("<8sBBHIhB", b"OpusHead", 1, 1, self._pre_skip, SAMPLE_RATE, 0, 0)
        vendor = b"antiphon"
        tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
        return _page(self._serial, 0, 0, head, header_type=0x02) + _page(self._serial, 1, 0, tags)

    def append_pcm(self, pcm: np.ndarray) -> bytes:
        """Encode what fills whole 20 ms packets; return the pages made (the headers come first)."""
        self._pending = np.concatenate([self._pending, np.asarray(pcm, dtype=np.float32)])
        pages = [self._headers] if self._headers else []
        self._headers = b""
        while len(self._pending) >= PACKET_SAMPLES:
            frame = np.ascontiguousarray(self._pending[:PACKET_SAMPLES])
            self._pending = self._pending[PACKET_SAMPLES:]
            size = _LIB.opus_encode_float(ctypes.c_void_p(self._encoder),
                                          frame.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                          PACKET_SAMPLES, self._out, _MAX_PACKET_BYTES)
            if size < 0:
                raise RuntimeError(f"opus_encode_float failed ({size})")
            self._granule += PACKET_SAMPLES * GRANULE_RATE // SAMPLE_RATE
            pages.append(_page(self._serial, self._sequence, self._granule, self._out[:size]))
            self._sequence += 1
        return b"".join(pages)

    def __del__(self) -> None:
        if getattr(self, "_encoder", None):
            _LIB.opus_encoder_destroy(ctypes.c_void_p(self._encoder))
            self._encoder = None


class OggOpusReader:
    """Ogg Opus bytes in (any split across calls), float32 PCM at 24 kHz out. Anything that is not a
    well-formed Ogg Opus stream raises ValueError."""

    def __init__(self) -> None:
        error = ctypes.c_int()
        self._decoder = _LIB.opus_decoder_create(SAMPLE_RATE, 1, ctypes.byref(error))
        if error.value != 0 or not self._decoder:
            raise RuntimeError(f"opus_decoder_create failed ({error.value})")
        self._buffer = b""
        self._packet = b""      # a packet continued on the next page
        self._headers_left = 2  # OpusHead, OpusTags
        self._pcm = np.empty(MAX_PACKET_SAMPLES, dtype=np.float32)

    def append_bytes(self, data: bytes) -> np.ndarray:
        self._buffer += data
        decoded = []
        while True:
            page = self._next_page()
            if page is None:
                break
            for packet in page:
                decoded.append(self._decode(packet))
        return np.concatenate(decoded) if decoded else np.zeros(0, dtype=np.float32)

    def _next_page(self) -> list[bytes] | None:
        """The packets completed by the next whole page in the buffer, or None when none is whole."""
        buffer = self._buffer
        if len(buffer) < 27:
            if buffer and not b"OggS".startswith(buffer[:4]):
                raise ValueError("not an Ogg page")
            return None
        magic, version, _, _, _, _, crc, segments = struct.unpack_from("<4sBBqIIIB", buffer)
        if magic != b"OggS" or version != 0:
            raise ValueError("not an Ogg page")
        header_size = 27 + segments
        if len(buffer) < header_size:
            return None
        lacing = buffer[27:header_size]
        size = header_size + sum(lacing)
        if len(buffer) < size:
            return None
        page = buffer[:size]
        if ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) != crc:
            raise ValueError("Ogg page checksum mismatch")
        self._buffer = buffer[size:]
        packets, offset = [], header_size
        for value in lacing:
            self._packet += page[offset:offset + value]
            offset += value
            if value < 255:
                packets.append(self._packet)
                self._packet = b""
        return packets

    def _decode(self, packet: bytes) -> np.ndarray:
        if self._headers_left:
            expected = b"OpusHead" if self._headers_left == 2 else b"OpusTags"
            if not packet.startswith(expected):
                raise ValueError(f"expected an {expected.decode()} packet")
            self._headers_left -= 1
            return np.zeros(0, dtype=np.float32)
        count = _LIB.opus_decode_float(ctypes.c_void_p(self._decoder), packet, len(packet),
                                       self._pcm.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                       MAX_PACKET_SAMPLES, 0)
        if count < 0:
            raise ValueError(f"undecodable Opus packet (libopus error {count})")
        return self._pcm[:count].copy()

    def __del__(self) -> None:
        if getattr(self, "_decoder", None):
            _LIB.opus_decoder_destroy(ctypes.c_void_p(self._decoder))
            self._decoder = None
