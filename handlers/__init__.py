"""Worker side of the gateway: everything that runs after an event has been queued.

- ``runtime``: the worker (taking RQ jobs, heartbeats, the reaper, drain) and a run's context;
- ``pipeline``: what happens to one delivery, from job start to its reply; ``standalone``: the
  same under a stock ``rq worker``;
- ``slack``, ``github``, ``stripe``: one package per platform, whose ``handle(envelope)`` is the
  job function the ingress names by dotted path, listed in ``registry``;
- ``agent`` and ``agents``: the agent protocol and the built-in agents; ``llm``: the ``llm``
  agent's model client and tool loop; ``tools``: what a tool is;
- ``state``: what is kept in Redis (key names, run records, session history, reply markers);
- ``config``, ``services``, ``clients``, ``retry``, ``errors``, ``logs``: settings read once, the
  shared clients, the one SDK-call and retry policy, the error tree, bound loggers;
- ``cli``: the worker-side commands.

The ingress (``gateway/``) never imports this package.
"""

__all__: list[str] = []  # a package of modules: import them by name
