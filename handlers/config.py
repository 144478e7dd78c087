"""The worker's settings, read once when a worker starts (or, under a stock ``rq worker``, per job).

Every variable only the worker reads is in ``VARIABLES`` with a one-line meaning: the agent, the
concurrency, each platform's reply credentials and API URL, and the ``llm`` agent's ``LLM_*``.
The settings both sides share (Redis, the queue, deadlines, signing secrets) are the web side's
``gateway.config.Settings``, held here as ``base``. Missing or contradictory settings raise
``ConfigError`` naming the variable. Files named by a setting (the GitHub App key, the system
prompt) are read here, once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.config import SECRET_VARIABLES as WEB_SECRET_VARIABLES
from gateway.config import VARIABLES as WEB_VARIABLES
from gateway.config import Reader, Settings, redact
from gateway.errors import ConfigError

__all__ = [
    "SECRET_VARIABLES",
    "VARIABLES",
    "FollowUpSettings",
    "GitHubSettings",
    "LLMSettings",
    "SlackSettings",
    "StripeSettings",
    "WorkerSettings",
    "check_environ",
    "redacted",
]

VARIABLES: dict[str, str] = {
    "GATEWAY_AGENT": "agent the worker runs: triage (default), llm, or package.module:callable",
    "GATEWAY_CONCURRENCY": "agent runs one worker process runs at once (default 100)",
    "GATEWAY_FOLLOWUPS": "follow-ups during a run: steer (default), queue, interrupt or reject",
    "GATEWAY_STOP_WORD": "a follow-up that is only this word stops the conversation's run (default stop)",
    "GATEWAY_ALLOW_BOTS": "on: other bots' messages may start runs and be follow-ups (default off)",
    "SLACK_BOT_TOKEN": "Slack bot token (xoxb-...) the worker replies with",
    "SLACK_APP_TOKEN": "Slack app-level token (xapp-..., scope connections:write) for gateway socket",
    "GITHUB_TOKEN": "token the worker replies with (alternative to a GitHub App)",
    "GITHUB_APP_ID": "GitHub App id, with GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_PATH",
    "GITHUB_APP_PRIVATE_KEY": "GitHub App private key, PEM text",
    "GITHUB_APP_PRIVATE_KEY_PATH": "GitHub App private key, path to a PEM file",
    "GITHUB_API_URL": "GitHub REST API base URL (default https://api.github.com; Enterprise: https://HOST/api/v3)",
    "STRIPE_API_KEY": "Stripe secret or restricted key the worker reads objects and writes metadata with",
    "STRIPE_API_BASE": "Stripe API base URL (default https://api.stripe.com)",
    "STRIPE_SLACK_CHANNEL": "optional Slack channel id where Stripe results are also announced",
    "LLM_BASE_URL": "OpenAI-compatible chat-completions base URL (required when GATEWAY_AGENT=llm)",
    "LLM_API_KEY": "API key for LLM_BASE_URL (optional for local servers)",
    "LLM_MODEL": "model name sent to LLM_BASE_URL (required when GATEWAY_AGENT=llm)",
    "LLM_SYSTEM_PROMPT": "system prompt of the llm agent: text, or @path to a file (default: per platform)",
    "LLM_MAX_STEPS": "model calls one llm run may make, tool rounds included (default 8)",
    "LLM_MAX_TOKENS": "prompt + completion tokens one llm run may use, from the API's usage (default 60000)",
    "LLM_TIMEOUT": "seconds to wait for the model's next bytes before retrying (default 60)",
    "LLM_HISTORY_TOKENS": "tokens of conversation history sent to the model, newest first (default 4000)",
    "LLM_STREAM": "stream answers (server-sent events): on (default) or off for servers that cannot",
}
"""Every setting only the worker reads, with its meaning (the shared ones: ``gateway.config``)."""

SECRET_VARIABLES = frozenset(
    {
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "GITHUB_TOKEN",
        "GITHUB_APP_PRIVATE_KEY",
        "STRIPE_API_KEY",
        "LLM_API_KEY",
    }
)

_AGENT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class SlackSettings:
    """Slack replies: the bot token and the Web API's base URL; Socket Mode's app-level token."""

    bot_token: str | None = field(repr=False)
    api_url: str
    app_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GitHubSettings:
    """GitHub replies: a token, or a GitHub App identity (id and private key); the API URL."""

    token: str | None = field(repr=False)
    app_id: str | None
    app_private_key: str | None = field(repr=False)
    app_private_key_path: str | None
    api_url: str

    @property
    def is_app(self) -> bool:
        """True when the worker authenticates as a GitHub App (installation tokens)."""
        return bool(self.app_id and self.app_private_key)


@dataclass(frozen=True)
class StripeSettings:
    """Stripe reads and metadata writes: the API key and base; where to announce results."""

    api_key: str | None = field(repr=False)
    api_base: str
    slack_channel: str | None


@dataclass(frozen=True)
class LLMSettings:
    """Any OpenAI-compatible chat-completions endpoint."""

    base_url: str | None
    api_key: str | None = field(repr=False)
    model: str | None
    system_prompt: str | None = field(default=None, repr=False)  # the text, read from @path if given
    system_prompt_setting: str | None = field(default=None, repr=False)  # as configured: text or @path
    max_steps: int = 8
    max_tokens: int = 60000
    timeout: float = 60.0
    history_tokens: int = 4000
    stream: bool = True


@dataclass(frozen=True)
class FollowUpSettings:
    """Follow-ups: what they do while a run works (``policy``), the stop word, whether bots count."""

    policy: Literal["steer", "queue", "interrupt", "reject"] = "steer"
    stop_word: str = "stop"
    allow_bots: bool = False


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker is configured with: the shared settings and the worker's own."""

    base: Settings
    agent: str
    concurrency: int
    slack: SlackSettings
    github: GitHubSettings
    stripe: StripeSettings
    llm: LLMSettings
    followups: FollowUpSettings = field(default_factory=FollowUpSettings)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read and check every setting; raise ``ConfigError`` naming the first bad variable."""
        source = os.environ if environ is None else environ
        env = Reader(source, VARIABLES)
        settings = cls(
            base=Settings.from_environ(source),
            agent=_read_agent(env),
            concurrency=env.integer("GATEWAY_CONCURRENCY", 100, minimum=1),
            slack=_read_slack(env, Reader(source, WEB_VARIABLES)),
            github=_read_github(env),
            stripe=_read_stripe(env),
            llm=_read_llm(env),
            followups=_read_followups(env),
        )
        _check_cross_settings(settings)
        return settings

    @property
    def redis_url(self) -> str:
        """``REDIS_URL``."""
        return self.base.redis_url

    @property
    def queue_name(self) -> str:
        """``GATEWAY_QUEUE``."""
        return self.base.queue_name

    @property
    def dedupe_ttl(self) -> int:
        """``GATEWAY_DEDUPE_TTL``: also how long reply markers are kept."""
        return self.base.dedupe_ttl

    @property
    def run_deadline(self) -> float:
        """``GATEWAY_RUN_DEADLINE``."""
        return self.base.run_deadline

    def as_variables(self) -> dict[str, str]:
        """The effective value of every worker variable (secrets in the clear: redact them)."""
        s = self
        return {
            "GATEWAY_AGENT": s.agent,
            "GATEWAY_CONCURRENCY": str(s.concurrency),
            "GATEWAY_FOLLOWUPS": s.followups.policy,
            "GATEWAY_STOP_WORD": s.followups.stop_word,
            "GATEWAY_ALLOW_BOTS": "on" if s.followups.allow_bots else "off",
            "SLACK_BOT_TOKEN": s.slack.bot_token or "",
            "SLACK_APP_TOKEN": s.slack.app_token or "",
            "GITHUB_TOKEN": s.github.token or "",
            "GITHUB_APP_ID": s.github.app_id or "",
            # A key read from a file is reported through its path, not as GITHUB_APP_PRIVATE_KEY.
            "GITHUB_APP_PRIVATE_KEY": ""
            if s.github.app_private_key_path
            else (s.github.app_private_key or ""),
            "GITHUB_APP_PRIVATE_KEY_PATH": s.github.app_private_key_path or "",
            "GITHUB_API_URL": s.github.api_url,
            "STRIPE_API_KEY": s.stripe.api_key or "",
            "STRIPE_API_BASE": s.stripe.api_base,
            "STRIPE_SLACK_CHANNEL": s.stripe.slack_channel or "",
            "LLM_BASE_URL": s.llm.base_url or "",
            "LLM_API_KEY": s.llm.api_key or "",
            "LLM_MODEL": s.llm.model or "",
            "LLM_SYSTEM_PROMPT": _describe_prompt(s.llm.system_prompt_setting),
            "LLM_MAX_STEPS": str(s.llm.max_steps),
            "LLM_MAX_TOKENS": str(s.llm.max_tokens),
            "LLM_TIMEOUT": f"{s.llm.timeout:g}",
            "LLM_HISTORY_TOKENS": str(s.llm.history_tokens),
            "LLM_STREAM": "on" if s.llm.stream else "off",
        }


def redacted(settings: WorkerSettings) -> dict[str, str]:
    """Every effective setting, shared and the worker's, as ``VARIABLE -> value``, secrets as set/unset."""
    values = {**settings.base.as_variables(), **settings.as_variables()}
    ordered = {name: values[name] for name in (*WEB_VARIABLES, *VARIABLES)}
    return redact(ordered, WEB_SECRET_VARIABLES | SECRET_VARIABLES)


def check_environ(environ: Mapping[str, str]) -> None:
    """Raise ``ConfigError`` if the worker would refuse ``environ`` or its agent (``gateway dev``
    checks first)."""
    from handlers.agent import load_agent  # the agent module imports these settings
    from handlers.errors import AgentLoadError

    settings = WorkerSettings.from_environ(environ)
    try:
        load_agent(settings.agent)
    except AgentLoadError as exc:
        raise ConfigError("GATEWAY_AGENT", str(exc)) from None


def _describe_prompt(setting: str | None) -> str:
    # A prompt may hold internal details: show where it comes from and its size, never its text.
    if not setting:
        return ""
    return setting if setting.startswith("@") else f"<text, {len(setting)} chars>"


def _read_agent(env: Reader) -> str:
    agent = env.text("GATEWAY_AGENT", "triage")
    if agent not in ("triage", "llm") and not _AGENT_SPEC.match(agent):
        raise ConfigError("GATEWAY_AGENT", "must be triage, llm or package.module:callable")
    return agent


def _read_followups(env: Reader) -> FollowUpSettings:
    policy = env.choice("GATEWAY_FOLLOWUPS", "STEER", ("STEER", "QUEUE", "INTERRUPT", "REJECT")).lower()
    word = env.text("GATEWAY_STOP_WORD", "stop").strip().casefold()
    if not word or any(char.isspace() for char in word) or word.startswith("/"):
        raise ConfigError("GATEWAY_STOP_WORD", "must be one word, without a leading /")
    return FollowUpSettings(
        policy=policy,  # type: ignore[arg-type]
        stop_word=word,
        allow_bots=env.choice("GATEWAY_ALLOW_BOTS", "OFF", ("ON", "OFF")) == "ON",
    )


def _read_slack(env: Reader, shared: Reader) -> SlackSettings:
    api_url = shared.url("SLACK_API_URL", "https://slack.com/api/")
    app_token = env.optional("SLACK_APP_TOKEN")
    if app_token and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN", "must be an app-level token (xapp-...), not a bot or user token")
    return SlackSettings(
        client_id=shared.optional("SLACK_CLIENT_ID"),
        client_secret=shared.optional("SLACK_CLIENT_SECRET"),
        app_token=app_token,
        bot_token=env.optional("SLACK_BOT_TOKEN"),
        # slack-sdk joins method names onto the base URL, so it must end with a slash.
        api_url=api_url if api_url.endswith("/") else api_url + "/",
    )


def _read_github(env: Reader) -> GitHubSettings:
    key_text = env.optional("GITHUB_APP_PRIVATE_KEY")
    key_path = env.optional("GITHUB_APP_PRIVATE_KEY_PATH")
    if key_text and key_path:
        raise ConfigError("GITHUB_APP_PRIVATE_KEY_PATH", "set it or GITHUB_APP_PRIVATE_KEY, not both")
    if key_path:
        key_text = _read_file("GITHUB_APP_PRIVATE_KEY_PATH", key_path)
    return GitHubSettings(
        token=env.optional("GITHUB_TOKEN"),
        app_id=env.optional("GITHUB_APP_ID"),
        app_private_key=key_text,
        app_private_key_path=key_path,
        api_url=env.url("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
    )


def _read_stripe(env: Reader) -> StripeSettings:
    return StripeSettings(
        api_key=env.optional("STRIPE_API_KEY"),
        api_base=env.url("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/"),
        slack_channel=env.optional("STRIPE_SLACK_CHANNEL"),
    )


def _read_llm(env: Reader) -> LLMSettings:
    prompt_setting = env.optional("LLM_SYSTEM_PROMPT")
    return LLMSettings(
        base_url=env.optional("LLM_BASE_URL"),
        api_key=env.optional("LLM_API_KEY"),
        model=env.optional("LLM_MODEL"),
        system_prompt=_read_prompt(prompt_setting) if prompt_setting else None,
        system_prompt_setting=prompt_setting,
        max_steps=env.integer("LLM_MAX_STEPS", 8, minimum=1),
        max_tokens=env.integer("LLM_MAX_TOKENS", 60000, minimum=100),
        timeout=float(env.integer("LLM_TIMEOUT", 60, minimum=1)),
        history_tokens=env.integer("LLM_HISTORY_TOKENS", 4000, minimum=0),
        stream=env.choice("LLM_STREAM", "ON", ("ON", "OFF")) == "ON",
    )


def _read_prompt(setting: str) -> str:
    # "@path" names a file (prompts are long and multi-line); anything else is the prompt itself.
    if not setting.startswith("@"):
        return setting
    text = _read_file("LLM_SYSTEM_PROMPT", setting[1:]).strip()
    if not text:
        raise ConfigError("LLM_SYSTEM_PROMPT", f"{setting[1:]} is empty")
    return text


def _read_file(variable: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(variable, f"cannot read {path}: {exc.strerror}") from None


def _check_cross_settings(s: WorkerSettings) -> None:
    """Settings that are fine alone but contradict each other."""
    gh = s.github
    if gh.token and gh.app_id:
        raise ConfigError("GITHUB_TOKEN", "set it or GITHUB_APP_ID, not both")
    if gh.app_id and not gh.app_private_key:
        raise ConfigError("GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_ID is set but no private key is")
    if gh.app_private_key and not gh.app_id:
        raise ConfigError("GITHUB_APP_ID", "a GitHub App private key is set but no app id is")
    if gh.app_id and not gh.app_id.isdigit():
        raise ConfigError("GITHUB_APP_ID", f"must be the numeric App id, got {gh.app_id!r}")
    if gh.app_private_key and "PRIVATE KEY-----" not in gh.app_private_key:
        raise ConfigError("GITHUB_APP_PRIVATE_KEY", "is not a PEM private key")
    if s.stripe.slack_channel and not s.slack.bot_token:
        raise ConfigError("SLACK_BOT_TOKEN", "STRIPE_SLACK_CHANNEL is set but there is no Slack bot token")
    if s.agent == "llm":
        for name, value in (("LLM_BASE_URL", s.llm.base_url), ("LLM_MODEL", s.llm.model)):
            if not value:
                raise ConfigError(name, "is required when GATEWAY_AGENT=llm")
