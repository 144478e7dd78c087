"""Example agents to copy from; run one with ``GATEWAY_AGENT=examples.my_agent:agent``."""
