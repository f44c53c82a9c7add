"""Pure parsing of Logback/Log4j files: bytes -> lines -> records -> typed fields.

Never imports `agent`; no I/O, no clocks (time is passed in). The public API is listed here;
the contract is in docs/architecture.md.
"""

from llmtail.parsers.lines import FrameFlag
from llmtail.parsers.multiline import Assembler, Frame
from llmtail.parsers.pattern import CompiledPattern, PatternError, compile_pattern
from llmtail.parsers.record import DEFAULT_PATTERN, ParserSettings, Record, RecordParser

__all__ = [
    "DEFAULT_PATTERN",
    "Assembler",
    "CompiledPattern",
    "Frame",
    "FrameFlag",
    "ParserSettings",
    "PatternError",
    "Record",
    "RecordParser",
    "compile_pattern",
]
