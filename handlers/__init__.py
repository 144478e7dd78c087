"""Worker side of the gateway: everything that runs after an event has been queued.

What belongs here: the worker runtime (``handlers.runtime``: taking RQ jobs, heartbeats, the
reaper, drain), the agent protocol and built-in agents (``handlers.agent``,
``handlers.agents``), the retry policy, session state, run records, one module per platform
(``handlers.slack``, ``handlers.github``, ``handlers.stripe``) whose ``handle(envelope)`` is the
job function the ingress names by dotted path, and the worker-side commands (``handlers.cli``).
The ingress (``gateway/``) never imports this package.
"""
