"""The masker a config asks for: its rules from `mask:`, its hash key from a private file.

parsers/mask.py is pure; reading the key and choosing the field cap happen here. The key never
appears in a message: errors say which file and what is wrong with it, never what it holds.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from llmtail.agent.config import Config, MaskConfig
from llmtail.parsers.mask import HMAC_SHA256, MaskConfigError, Masker, MaskSettings

SLS_VALUE_BYTES = 1024 * 1024  # SLS refuses a value over 1 MB
MIN_KEY_BYTES = 16


class MaskKeyError(Exception):
    """The masking key cannot be used; the message is one line meant for the user."""


def masker_for(config: Config) -> Masker:
    """The masker of `config.mask`; a masked field stays within the record cap and 1 MB."""
    mask = config.mask
    key = read_key(mask.hmac_key_file) if uses_hmac(mask) and mask.hmac_key_file else None
    cap = min(config.parser.max_record_bytes, SLS_VALUE_BYTES)
    try:
        return Masker.from_config(mask.settings(cap), key)
    except MaskConfigError as exc:  # load_config validated the rules: only the key is left
        raise MaskKeyError(f"mask: {exc}") from None


def mask_settings(config: Config) -> tuple[MaskSettings | None, bytes | None]:
    """What the engine masks with (None: masking is off) and the hmac key, if a rule uses it."""
    mask = config.mask
    if not mask.enabled:
        return None, None
    key = read_key(mask.hmac_key_file) if uses_hmac(mask) and mask.hmac_key_file else None
    return mask.settings(min(config.parser.max_record_bytes, SLS_VALUE_BYTES)), key


def uses_hmac(mask: MaskConfig) -> bool:
    replacements = [*mask.replace.values(), *(rule.replace for rule in mask.custom)]
    return mask.enabled and HMAC_SHA256 in replacements


def read_key(path: str | Path) -> bytes:
    """The key of hmac:sha256 replacements: a file's bytes, without a trailing newline.

    Refused when group or others may read it (the key makes hashes of short values, such as
    phone numbers, reversible by trying every value) or when it is shorter than 16 bytes.
    """
    where = f"mask.hmac_key_file {path}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise MaskKeyError(f"{where}: cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MaskKeyError(f"{where}: not a regular file")
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise MaskKeyError(
                f"{where}: readable by group/others (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"run: chmod 600 {path}"
            )
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    key = data.rstrip(b"\r\n")
    if len(key) < MIN_KEY_BYTES:
        raise MaskKeyError(
            f"{where}: the key is shorter than {MIN_KEY_BYTES} bytes; "
            "write a random one, e.g. head -c 32 /dev/urandom | base64 > FILE"
        )
    return key
