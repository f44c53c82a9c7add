"""llmtail, as installed: `llmtail.agent` (the agent), `llmtail.parsers` (the reference parser) and
`llmtail._core` (the compiled Stream built from core/).

In the repository `agent/` and `parsers/` stay top-level folders; `llmtail/agent` and
`llmtail/parsers` are symlinks to them, so the same import names work in the checkout, in an
editable install and in a wheel (which copies the files behind the links).
"""
