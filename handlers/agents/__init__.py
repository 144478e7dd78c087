"""Built-in agents, named in ``handlers.agent.BUILTIN_AGENTS`` (``triage``; ``llm`` later)."""

__all__: list[str] = []  # a package of modules: import them by name
