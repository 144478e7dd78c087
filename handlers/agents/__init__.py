"""Built-in agents, named in ``handlers.agent.BUILTIN_AGENTS`` (``triage``; ``llm`` later)."""
