"""`python -m llmtail` is `llmtail`, for hosts where the console script is not on PATH."""

from llmtail.agent.launch import main

main()
