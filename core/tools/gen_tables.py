"""Regenerate the core's tables from the running CPython (run from the repository root):

    python core/tools/gen_tables.py && (cd core && cargo fmt)

- src/printable.rs: code points `str.isprintable()` is false for (for `repr()` texts);
- src/gbk_table.rs: CPython's `gbk` codec, every two-byte sequence (0: not mapped).
Refuses to write a GBK table whose encoder is not the exact inverse of its decoder.
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
VERSION = f"CPython {sys.version_info.major}.{sys.version_info.minor}"


def printable() -> str:
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for cp in range(sys.maxunicode + 1):
        bad = 0xD800 <= cp <= 0xDFFF or not chr(cp).isprintable()
        if bad and start is None:
            start = cp
        elif not bad and start is not None:
            ranges.append((start, cp - 1))
            start = None
    if start is not None:
        ranges.append((start, sys.maxunicode))
    lines = [
        f"//! Code points `str.isprintable()` is false for in {VERSION}, generated from",
        "//! its unicodedata (core/tools/gen_tables.py) so `repr()` texts match the reference.",
        "",
        "pub(crate) const NOT_PRINTABLE: &[(u32, u32)] = &[",
        *(f"    (0x{a:X}, 0x{b:X})," for a, b in ranges),
        "];",
    ]
    return "\n".join(lines) + "\n"


def gbk() -> str:
    table: list[int] = []
    for lead in range(0x81, 0xFF):
        for trail in range(0x40, 0xFF):
            try:
                table.append(ord(bytes((lead, trail)).decode("gbk")))
            except UnicodeDecodeError:
                table.append(0)
    for index, cp in enumerate(table):
        if cp and chr(cp).encode("gbk") != bytes((0x81 + index // 191, 0x40 + index % 191)):
            raise SystemExit(f"gbk: U+{cp:04X} does not encode back to its sequence")
    lines = [
        f"//! {VERSION}'s `gbk` codec as a table, generated from it (core/tools/gen_tables.py):",
        "//! every two-byte sequence, lead 0x81-0xFE, trail 0x40-0xFE; 0: not mapped.",
        "",
        f"pub(crate) static GBK: [u16; {len(table)}] = [",
        *(
            "    " + ", ".join(f"0x{v:04X}" for v in table[i : i + 12]) + ","
            for i in range(0, len(table), 12)
        ),
        "];",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (SRC / "printable.rs").write_text(printable())
    (SRC / "gbk_table.rs").write_text(gbk())
