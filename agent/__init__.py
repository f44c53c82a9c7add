"""llmtail agent: follows log files and ships parsed records to a Logstore."""

__version__ = "0.1.0"
