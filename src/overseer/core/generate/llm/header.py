"""A look at a model file before any native code touches it.

ctransformers (like other GGML loaders) crashes the whole process on several malformed files:
a file truncated by half loads and then segfaults on the first token; `GGUF` followed by noise
asks for terabytes and segfaults. The child process contains such crashes, but most broken files
are caught here first, with a clear reason, by walking the GGUF structure: every metadata entry
and tensor description must be readable, and every tensor's data must lie inside the file.
Only the header region is read, never the weights, so this stays cheap for a multi-GB model.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import IO, Any

GGUF_MAGIC = b"GGUF"
# Older GGML container formats, as their first four bytes appear on disk.
GGML_MAGICS = {b"lmgg": "ggml", b"fmgg": "ggmf", b"tjgg": "ggjt", b"algg": "ggla"}
# Metadata value types with a fixed size (8: string, 9: array).
SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
# ggml tensor types: (elements per block, bytes per block).
TENSOR_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2),
}  # fmt: skip
MAX_STRING = 1 << 20
MAX_ENTRIES = 1 << 20


class ModelFileError(Exception):
    """The model file cannot be used; the message says what is wrong with which file."""


class _Reader:
    def __init__(self, f: IO[bytes], size: int, path: Path) -> None:
        self.f, self.size, self.path = f, size, path

    def take(self, n: int) -> bytes:
        at = self.f.tell()
        if n < 0 or at + n > self.size:
            raise ModelFileError(
                f"{self.path} is truncated or corrupted: {n} bytes needed at offset {at}, "
                f"the file has {self.size}"
            )
        return self.f.read(n)

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.unpack("Q")
        if length > MAX_STRING:
            raise ModelFileError(
                f"{self.path}: a {length}-byte string in the header cannot be right"
            )
        return self.take(length).decode("utf-8", errors="replace")

    def value(self, kind: int, nested: bool = False) -> Any:
        if kind in SCALARS:
            return self.unpack(SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind == 9 and not nested:
            item, count = self.unpack("I"), self.unpack("Q")
            if count > self.size:
                raise ModelFileError(f"{self.path}: an array of {count} entries cannot fit")
            if item in SCALARS:  # skip numbers in bulk: vocabularies are long
                width = struct.calcsize(SCALARS[item])
                self.take(width * count)
                return None
            return [self.value(item, nested=True) for _ in range(count)]
        raise ModelFileError(f"{self.path}: unknown metadata value type {kind}")


def check_model_file(path: Path) -> str:
    """The file's format ("gguf v3, llama, 21 tensors"), or ModelFileError saying why not."""
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelFileError(f"model file {path} is not a regular file")
    size = path.stat().st_size
    if size < 24:
        raise ModelFileError(f"model file {path} is {size} bytes: too small to be a model")
    with path.open("rb") as f:
        magic = f.read(4)
        if magic in GGML_MAGICS:
            return GGML_MAGICS[magic]  # the old formats have no self-description to walk
        if magic != GGUF_MAGIC:
            raise ModelFileError(f"{path} is not a GGUF or GGML model (it starts with {magic!r})")
        r = _Reader(f, size, path)
        version = r.unpack("I")
        if version not in (2, 3):
            raise ModelFileError(f"{path}: GGUF version {version} is not supported (2 or 3)")
        tensors, entries = r.unpack("Q"), r.unpack("Q")
        if tensors == 0 or tensors > MAX_ENTRIES or entries > MAX_ENTRIES:
            raise ModelFileError(
                f"{path}: {tensors} tensors and {entries} metadata entries cannot be right"
            )
        metadata = {}
        for _ in range(entries):
            key = r.string()
            metadata[key] = r.value(r.unpack("I"))
        alignment = metadata.get("general.alignment") or 32
        if not isinstance(alignment, int) or alignment & (alignment - 1):
            raise ModelFileError(f"{path}: general.alignment {alignment!r} is not a power of two")
        extents = []
        for _ in range(tensors):
            name = r.string()
            dims = r.unpack("I")
            if not 1 <= dims <= 4:
                raise ModelFileError(f"{path}: tensor {name!r} has {dims} dimensions")
            shape = [r.unpack("Q") for _ in range(dims)]
            kind, offset = r.unpack("I"), r.unpack("Q")
            if kind not in TENSOR_TYPES:
                raise ModelFileError(f"{path}: tensor {name!r} has unknown type {kind}")
            block, block_bytes = TENSOR_TYPES[kind]
            elements = 1
            for d in shape:
                elements *= d
            extents.append((name, offset, elements // block * block_bytes))
        data_start = (f.tell() + alignment - 1) // alignment * alignment
        for name, offset, length in extents:
            end = data_start + offset + length
            if end > size:
                raise ModelFileError(
                    f"{path} is truncated: tensor {name!r} ends at byte {end}, the file has {size}"
                )
    architecture = metadata.get("general.architecture") or "unknown"
    return f"gguf v{version}, {architecture}, {tensors} tensors"
