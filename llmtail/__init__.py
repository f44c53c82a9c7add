"""llmtail: the installed package; `llmtail._core` is the compiled Stream built from core/."""
