"""Pure parsing of Logback/Log4j files: bytes -> lines -> records -> typed fields.

Never imports `agent`; no I/O, no clocks (time is passed in).
"""
