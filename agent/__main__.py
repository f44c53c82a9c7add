"""`python -m agent` is `llmtail`, for hosts where the console script is not on PATH."""

from agent.launch import main

main()
