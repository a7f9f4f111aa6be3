"""Small but well-formed media files: PNG images and audio in each text-to-speech format."""

from __future__ import annotations

import hashlib
import struct
import zlib

SAMPLE_RATE = 24000
# 0.1 s of 16-bit mono silence.
_SILENCE = b"\x00\x00" * (SAMPLE_RATE // 10)

AUDIO_MIMETYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "aac": "audio/aac",
    "pcm": "audio/pcm",
}


def png_image(seed: str, side: int = 16) -> bytes:
    """Encode a square PNG in one colour derived from `seed`, so results differ per prompt."""
    red, green, blue = hashlib.sha256(seed.encode()).digest()[:3]
    row = b"\x00" + bytes((red, green, blue)) * side
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(row * side)) + _png_chunk(b"IEND", b""))


def speech_audio(audio_format: str) -> bytes:
    """Return a short clip whose container signature matches `audio_format`."""
    builders = {"mp3": _mp3, "wav": _wav, "opus": _ogg_opus, "flac": _flac, "aac": _adts_aac,
                "pcm": lambda: _SILENCE}
    return builders[audio_format]()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    checksum = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", checksum)


def _mp3() -> bytes:
    # ID3v2.4 tag with no frames, then MPEG-1 Layer III frames at 128 kbit/s and 44.1 kHz,
    # each 417 bytes long including the 4-byte header.
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x00"
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    return id3 + frame * 4


def _wav() -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(_SILENCE)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(_SILENCE)) + _SILENCE)


def _flac() -> bytes:
    # STREAMINFO only: block sizes 4096, unknown frame sizes, then sample rate (20 bits),
    # channels - 1 (3 bits), bits per sample - 1 (5 bits) and total samples (36 bits).
    packed = (SAMPLE_RATE << 44) | (0 << 41) | (15 << 36) | 0
    stream_info = struct.pack(">HH", 4096, 4096) + bytes(6) + struct.pack(">Q", packed) + bytes(16)
    header = bytes((0x80,)) + len(stream_info).to_bytes(3, "big")
    return b"fLaC" + header + stream_info


def _adts_aac() -> bytes:
    # ADTS header: MPEG-4, no CRC (0xFFF1), AAC LC, 24 kHz (index 6), mono.
    payload = bytes(16)
    length = 7 + len(payload)
    header = bytes((0xFF, 0xF1, (1 << 6) | (6 << 2), (1 << 6) | (length >> 11),
                    (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC))
    return (header + payload) * 8


def _ogg_opus() -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, SAMPLE_RATE, 0, 0)
    vendor = b"fake-1min"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    return _ogg_page(head, sequence=0, header_type=0x02) + _ogg_page(tags, sequence=1)


def _ogg_page(packet: bytes, sequence: int, header_type: int = 0) -> bytes:
    segments = [255] * (len(packet) // 255) + [len(packet) % 255]
    page = (b"OggS" + struct.pack("<BBqIII", 0, header_type, 0, 0x1A1B2C3D, sequence, 0)
            + bytes((len(segments),)) + bytes(segments) + packet)
    checksum = _ogg_crc(page)
    return page[:22] + struct.pack("<I", checksum) + page[26:]


def _ogg_crc(data: bytes) -> int:
    # Ogg uses CRC-32 with polynomial 0x04C11DB7, no reflection, initial value 0.
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc
