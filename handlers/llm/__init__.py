"""The LLM agent's machinery: everything between an ``Event`` and an OpenAI-compatible model.

- ``client``: the async chat-completions client (httpx, streaming, retries, circuit breaker);
- ``completion``: what one model answer is, parsed from JSON or from server-sent events;
- ``breaker``: the circuit breaker every run of a worker process shares;
- ``loop``: the tool-calling loop under its budgets (steps, tokens, wall clock);
- ``streaming``: the model's streamed text passed on to ``run.stream``, once, across retries;
- ``prompts`` and ``memory``: system prompts and session history trimmed to a token budget;
- ``spans``: what the trace spans of model and tool calls say (OpenTelemetry's GenAI conventions).

The agent entry point is ``handlers.agents.llm:agent`` (``GATEWAY_AGENT=llm``); the tools it may
call are each platform's (``handlers.<platform>.tools``, built on ``handlers.tools``).
"""

__all__: list[str] = []  # a package of modules: import them by name
