"""`llmtail provision`: the Logstore, its typed index, dashboards, alerts and saved searches.

A plan/apply tool over the SDK's public admin API. `desired` builds every object from the config
(queries from `queries`), `remote` reads and writes them through the SDK, `plan` compares what
exists with what is wanted and applies only what differs: a second run writes nothing.
"""
