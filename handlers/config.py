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
from gateway.platforms.slack import prompts as slack_prompts
from gateway.runs import set_retention as set_run_retention
from handlers.state.sessions import MAX_AGE
from handlers.state.sessions import set_retention as set_session_retention

__all__ = [
    "SECRET_VARIABLES",
    "VARIABLES",
    "AlertSettings",
    "FollowUpSettings",
    "GitHubSettings",
    "LLMSettings",
    "SlackSettings",
    "StripeSettings",
    "WebhookRef",
    "WorkerSettings",
    "check_environ",
    "redacted",
]

VARIABLES: dict[str, str] = {
    "GATEWAY_AGENT": "agent the worker runs: triage (default), llm, or package.module:callable",
    "GATEWAY_CONCURRENCY": "agent runs one worker process runs at once (default 100)",
    "GATEWAY_SESSION_RETENTION": "seconds a conversation's history is kept after its last turn (default 7 d)",
    "GATEWAY_ALERT_SLACK_CHANNEL": "Slack channel id alerts go to (needs SLACK_BOT_TOKEN); unset: logged",
    "GATEWAY_ALERT_FAILED_THRESHOLD": "failed runs kept that raise an alert (default 10)",
    "GATEWAY_RECOVER_INTERVAL": "seconds between recovery sweeps of GitHub and Stripe (default 300; 0: off)",
    "GATEWAY_FOLLOWUPS": "follow-ups during a run: steer (default), queue, interrupt or reject",
    "GATEWAY_STOP_WORD": "a follow-up that is only this word stops the conversation's run (default stop)",
    "GATEWAY_ALLOW_BOTS": "on: other bots' messages may start runs and be follow-ups (default off)",
    "SLACK_BOT_TOKEN": "Slack bot token (xoxb-...) the worker replies with",
    "SLACK_APP_DISTRIBUTION": "internal (default), marketplace, or unlisted: distributed outside the "
    "Slack Marketplace, whose thread reads Slack limits to 1 a minute and 15 messages",
    "SLACK_APP_TOKEN": "Slack app-level token (xapp-..., scope connections:write) for gateway socket",
    "SLACK_SUGGESTED_PROMPTS": "prompts a new assistant thread offers (also in gateway manifest slack): "
    "title=message, |-separated, at most 4; off: none (default: two)",
    "SLACK_STREAM": "on (default): answers in threads stream in (chat.startStream); off: placeholder, "
    "then the answer",
    "SLACK_FEEDBACK": "on (default): good/bad feedback buttons under final answers; off: none",
    "GITHUB_TOKEN": "token the worker replies with (alternative to a GitHub App)",
    "GITHUB_APP_ID": "GitHub App id, with GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_PATH",
    "GITHUB_APP_PRIVATE_KEY": "GitHub App private key, PEM text",
    "GITHUB_APP_PRIVATE_KEY_PATH": "GitHub App private key, path to a PEM file",
    "GITHUB_RECOVER_HOOKS": "webhooks whose failed deliveries are redelivered (with GITHUB_TOKEN): "
    "owner/repo:HOOK_ID or org:HOOK_ID, comma-separated",
    "STRIPE_API_KEY": "Stripe secret or restricted key the worker reads objects and writes metadata with",
    "STRIPE_API_BASE": "Stripe API base URL (default https://api.stripe.com)",
    "STRIPE_SLACK_CHANNEL": "optional Slack channel id where Stripe results are also announced",
    "STRIPE_THIN_EVENT_TYPES": "thin event types the Stripe destination receives (at most 20, "
    "comma-separated): recovery lists these through the v2 events API",
    "LLM_BASE_URL": "OpenAI-compatible chat-completions base URL (required when GATEWAY_AGENT=llm)",
    "LLM_API_KEY": "API key for LLM_BASE_URL (optional for local servers)",
    "LLM_MODEL": "model name sent to LLM_BASE_URL (required when GATEWAY_AGENT=llm)",
    "LLM_SYSTEM_PROMPT": "system prompt of the llm agent: text, or @path to a file (default: per platform)",
    "LLM_MAX_STEPS": "model calls one llm run may make, tool rounds included (default 8)",
    "LLM_MAX_TOKENS": "prompt + completion tokens one llm run may use, from the API's usage (default 60000)",
    "LLM_MAX_ANSWER_TOKENS": "tokens one model answer may have, sent as max_tokens (default 2048)",
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
_DISTRIBUTIONS = ("INTERNAL", "MARKETPLACE", "UNLISTED")

_WEBHOOK_REF = re.compile(r"^(?P<target>[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)?):(?P<hook_id>[0-9]{1,20})$")
_EVENT_TYPE = re.compile(r"^[a-z0-9_]+(?:\.[a-z0-9_]+)+$")
_MAX_THIN_TYPES = 20  # what GET /v2/core/events accepts in ``types``


@dataclass(frozen=True)
class WebhookRef:
    """A repository webhook (``target`` = ``owner/repo``) or an organization's (``target`` = ``org``)."""

    target: str
    hook_id: int

    @property
    def is_repository(self) -> bool:
        """True for a repository webhook, False for an organization webhook."""
        return "/" in self.target

    def __str__(self) -> str:
        return f"{self.target}:{self.hook_id}"


@dataclass(frozen=True)
class SlackSettings:
    """Slack replies: the bot token and the Web API's base URL; Socket Mode's app-level token; how
    the app is distributed (``internal``, ``marketplace`` or ``unlisted``: Slack's rate limits differ);
    the suggested prompts of a new assistant thread (``SLACK_SUGGESTED_PROMPTS``);
    whether answers stream (``SLACK_STREAM``) and carry feedback buttons (``SLACK_FEEDBACK``)."""

    bot_token: str | None = field(repr=False)
    api_url: str
    app_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    distribution: str = "internal"
    suggested_prompts: tuple[slack_prompts.Prompt, ...] = slack_prompts.DEFAULT
    stream: bool = True
    feedback: bool = True


@dataclass(frozen=True)
class GitHubSettings:
    """GitHub replies: a token, or a GitHub App identity (id and private key); the API URL."""

    token: str | None = field(repr=False)
    app_id: str | None
    app_private_key: str | None = field(repr=False)
    app_private_key_path: str | None
    api_url: str
    recover_hooks: tuple[WebhookRef, ...] = ()

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
    thin_event_types: tuple[str, ...] = ()


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
    max_answer_tokens: int = 2048
    timeout: float = 60.0
    history_tokens: int = 4000
    stream: bool = True


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go (``gateway.alerts``) and when a failed registry is worth one."""

    slack_channel: str | None
    failed_threshold: int


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
    session_retention: int
    alerts: AlertSettings
    recover_interval: int
    slack: SlackSettings
    github: GitHubSettings
    stripe: StripeSettings
    llm: LLMSettings
    followups: FollowUpSettings = field(default_factory=FollowUpSettings)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read and check every setting; raise ``ConfigError`` naming the first bad variable."""
        source = os.environ if environ is None else environ
        env, shared = Reader(source, VARIABLES), Reader(source, WEB_VARIABLES)
        settings = cls(
            base=Settings.from_environ(source),
            agent=_read_agent(env),
            concurrency=env.integer("GATEWAY_CONCURRENCY", 100, minimum=1),
            session_retention=env.integer("GATEWAY_SESSION_RETENTION", MAX_AGE, minimum=60),
            alerts=AlertSettings(
                slack_channel=env.optional("GATEWAY_ALERT_SLACK_CHANNEL"),
                failed_threshold=env.integer("GATEWAY_ALERT_FAILED_THRESHOLD", 10, minimum=1),
            ),
            recover_interval=env.integer("GATEWAY_RECOVER_INTERVAL", 300, minimum=0),
            slack=_read_slack(env, shared),
            github=_read_github(env, shared),
            stripe=_read_stripe(env),
            llm=_read_llm(env),
            followups=_read_followups(env),
        )
        _check_cross_settings(settings)
        return settings

    def apply_retention(self) -> None:
        """Set how long this process keeps run records and session history (once, at start)."""
        set_run_retention(self.base.run_retention)
        set_session_retention(self.session_retention)

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
            "GATEWAY_SESSION_RETENTION": str(s.session_retention),
            "GATEWAY_ALERT_SLACK_CHANNEL": s.alerts.slack_channel or "",
            "GATEWAY_ALERT_FAILED_THRESHOLD": str(s.alerts.failed_threshold),
            "GATEWAY_RECOVER_INTERVAL": str(s.recover_interval),
            "GATEWAY_FOLLOWUPS": s.followups.policy,
            "GATEWAY_STOP_WORD": s.followups.stop_word,
            "GATEWAY_ALLOW_BOTS": "on" if s.followups.allow_bots else "off",
            "SLACK_BOT_TOKEN": s.slack.bot_token or "",
            "SLACK_APP_DISTRIBUTION": s.slack.distribution,
            "SLACK_APP_TOKEN": s.slack.app_token or "",
            "SLACK_SUGGESTED_PROMPTS": slack_prompts.to_setting(s.slack.suggested_prompts),
            "SLACK_STREAM": "on" if s.slack.stream else "off",
            "SLACK_FEEDBACK": "on" if s.slack.feedback else "off",
            "GITHUB_TOKEN": s.github.token or "",
            "GITHUB_APP_ID": s.github.app_id or "",
            # A key read from a file is reported through its path, not as GITHUB_APP_PRIVATE_KEY.
            "GITHUB_APP_PRIVATE_KEY": ""
            if s.github.app_private_key_path
            else (s.github.app_private_key or ""),
            "GITHUB_APP_PRIVATE_KEY_PATH": s.github.app_private_key_path or "",
            "GITHUB_API_URL": s.github.api_url,
            "GITHUB_RECOVER_HOOKS": ",".join(str(ref) for ref in s.github.recover_hooks),
            "STRIPE_API_KEY": s.stripe.api_key or "",
            "STRIPE_API_BASE": s.stripe.api_base,
            "STRIPE_SLACK_CHANNEL": s.stripe.slack_channel or "",
            "STRIPE_THIN_EVENT_TYPES": ",".join(s.stripe.thin_event_types),
            "LLM_BASE_URL": s.llm.base_url or "",
            "LLM_API_KEY": s.llm.api_key or "",
            "LLM_MODEL": s.llm.model or "",
            "LLM_SYSTEM_PROMPT": _describe_prompt(s.llm.system_prompt_setting),
            "LLM_MAX_STEPS": str(s.llm.max_steps),
            "LLM_MAX_TOKENS": str(s.llm.max_tokens),
            "LLM_MAX_ANSWER_TOKENS": str(s.llm.max_answer_tokens),
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
        distribution=env.choice("SLACK_APP_DISTRIBUTION", "internal", _DISTRIBUTIONS).lower(),
        suggested_prompts=slack_prompts.parse(env.optional(slack_prompts.VARIABLE)),
        stream=env.choice("SLACK_STREAM", "ON", ("ON", "OFF")) == "ON",
        feedback=env.choice("SLACK_FEEDBACK", "ON", ("ON", "OFF")) == "ON",
    )


def _read_github(env: Reader, shared: Reader) -> GitHubSettings:
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
        api_url=shared.url("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
        recover_hooks=tuple(_webhook_ref(value) for value in _list(env, "GITHUB_RECOVER_HOOKS")),
    )


def _list(env: Reader, name: str) -> tuple[str, ...]:
    return env.secrets(name)  # comma-separated, none empty (the same reading as rotated secrets)


def _webhook_ref(value: str) -> WebhookRef:
    matched = _WEBHOOK_REF.match(value)
    if matched is None:
        raise ConfigError("GITHUB_RECOVER_HOOKS", f"{value!r} is not owner/repo:HOOK_ID or org:HOOK_ID")
    return WebhookRef(matched["target"], int(matched["hook_id"]))


def _read_stripe(env: Reader) -> StripeSettings:
    return StripeSettings(
        api_key=env.optional("STRIPE_API_KEY"),
        api_base=env.url("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/"),
        slack_channel=env.optional("STRIPE_SLACK_CHANNEL"),
        thin_event_types=_thin_event_types(env),
    )


def _thin_event_types(env: Reader) -> tuple[str, ...]:
    types = _list(env, "STRIPE_THIN_EVENT_TYPES")
    if len(types) > _MAX_THIN_TYPES:
        raise ConfigError("STRIPE_THIN_EVENT_TYPES", f"at most {_MAX_THIN_TYPES} types, got {len(types)}")
    for name in types:
        if not _EVENT_TYPE.match(name):
            raise ConfigError(
                "STRIPE_THIN_EVENT_TYPES",
                f"{name!r} is not an event type such as v1.billing.meter.no_meter_found",
            )
    return types


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
        max_answer_tokens=env.integer("LLM_MAX_ANSWER_TOKENS", 2048, minimum=16),
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
    if gh.recover_hooks and not gh.token:
        raise ConfigError(
            "GITHUB_RECOVER_HOOKS", "needs GITHUB_TOKEN (a token allowed to read and redeliver the webhooks)"
        )
    if s.stripe.slack_channel and not s.slack.bot_token:
        raise ConfigError("SLACK_BOT_TOKEN", "STRIPE_SLACK_CHANNEL is set but there is no Slack bot token")
    if s.alerts.slack_channel and not s.slack.bot_token:
        raise ConfigError(
            "SLACK_BOT_TOKEN",
            "GATEWAY_ALERT_SLACK_CHANNEL is set but there is no Slack bot token",
        )
    if s.agent == "llm":
        for name, value in (("LLM_BASE_URL", s.llm.base_url), ("LLM_MODEL", s.llm.model)):
            if not value:
                raise ConfigError(name, "is required when GATEWAY_AGENT=llm")
