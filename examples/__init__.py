"""Example agents to copy from; run one with ``GATEWAY_AGENT=examples.my_agent:agent``."""

__all__: list[str] = []  # a package of modules: import them by name
