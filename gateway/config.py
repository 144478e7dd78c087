"""Settings, read once from an injectable mapping (normally ``os.environ``).

Every variable the project reads is listed in ``VARIABLES`` with a one-line meaning; nothing
else reads the environment. A platform is on when its signing secret is set. Missing or
contradictory settings raise ``ConfigError`` naming the variable, so start-up stops there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import ConfigError

THREE_DAYS = 3 * 24 * 3600
MIB = 1024 * 1024

VARIABLES: dict[str, str] = {
    "REDIS_URL": "Redis holding claims, the queue and run state (default redis://localhost:6379/0)",
    "SLACK_SIGNING_SECRET": "Slack app signing secret(s), comma-separated; turns the Slack route on",
    "SLACK_BOT_TOKEN": "Slack bot token (xoxb-...) the worker replies with",
    "SLACK_API_URL": "Slack Web API base URL (default https://slack.com/api/)",
    "SLACK_MAX_BODY": "largest Slack body accepted, in bytes (default 1 MiB)",
    "GITHUB_WEBHOOK_SECRET": "GitHub webhook secret(s), comma-separated; turns the GitHub route on",
    "GITHUB_TOKEN": "token the worker replies with (alternative to a GitHub App)",
    "GITHUB_APP_ID": "GitHub App id, with GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_PATH",
    "GITHUB_APP_PRIVATE_KEY": "GitHub App private key, PEM text",
    "GITHUB_APP_PRIVATE_KEY_PATH": "GitHub App private key, path to a PEM file",
    "GITHUB_API_URL": "GitHub REST API base URL (default https://api.github.com; Enterprise: https://HOST/api/v3)",
    "GITHUB_MAX_BODY": "largest GitHub body accepted, in bytes (default 25 MiB, GitHub's own cap)",
    "STRIPE_WEBHOOK_SECRET": "Stripe endpoint signing secret(s), comma-separated; turns the Stripe route on",
    "STRIPE_API_KEY": "Stripe secret or restricted key the worker reads objects and writes metadata with",
    "STRIPE_API_BASE": "Stripe API base URL (default https://api.stripe.com)",
    "STRIPE_SLACK_CHANNEL": "optional Slack channel id where Stripe results are also announced",
    "STRIPE_MAX_BODY": "largest Stripe body accepted, in bytes (default 1 MiB)",
    "GATEWAY_AGENT": "agent the worker runs: triage (default), llm, or package.module:callable",
    "GATEWAY_QUEUE": "name of the RQ queue deliveries go to (default gateway)",
    "GATEWAY_DEDUPE_TTL": "seconds a delivery id stays claimed (default and minimum 259200, 3 days)",
    "GATEWAY_RUN_DEADLINE": "seconds an agent run may take before it ends as timed out (default 600)",
    "GATEWAY_CONCURRENCY": "agent runs one worker process runs at once (default 100)",
    "GATEWAY_LOG_LEVEL": "log level: DEBUG, INFO (default), WARNING, ERROR",
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

SECRET_VARIABLES = frozenset(
    {
        "SLACK_SIGNING_SECRET",
        "SLACK_BOT_TOKEN",
        "GITHUB_WEBHOOK_SECRET",
        "GITHUB_TOKEN",
        "GITHUB_APP_PRIVATE_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_API_KEY",
        "LLM_API_KEY",
    }
)

_AGENT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class SlackSettings:
    """Slack: signing secrets (inbound) and the bot token (outbound)."""

    signing_secrets: tuple[str, ...] = field(repr=False)
    bot_token: str | None = field(repr=False)
    api_url: str
    max_body: int


@dataclass(frozen=True)
class GitHubSettings:
    """GitHub: webhook secrets and either a token or a GitHub App identity."""

    webhook_secrets: tuple[str, ...] = field(repr=False)
    token: str | None = field(repr=False)
    app_id: str | None
    app_private_key: str | None = field(repr=False)
    app_private_key_path: str | None
    api_url: str
    max_body: int


@dataclass(frozen=True)
class StripeSettings:
    """Stripe: endpoint secrets, the API key and where to announce results."""

    webhook_secrets: tuple[str, ...] = field(repr=False)
    api_key: str | None = field(repr=False)
    api_base: str
    slack_channel: str | None
    max_body: int


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
class Settings:
    """Everything the gateway and its workers are configured with."""

    redis_url: str = field(repr=False)  # may carry a password
    queue_name: str
    dedupe_ttl: int
    run_deadline: float
    concurrency: int
    log_level: str
    agent: str
    slack: SlackSettings
    github: GitHubSettings
    stripe: StripeSettings
    llm: LLMSettings

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; raise ``ConfigError`` naming the first bad variable."""
        env = _Reader(os.environ if environ is None else environ)
        settings = cls(
            redis_url=env.text("REDIS_URL", "redis://localhost:6379/0"),
            queue_name=env.matching("GATEWAY_QUEUE", "gateway", _QUEUE_NAME, "letters, digits, _ and -"),
            dedupe_ttl=env.integer("GATEWAY_DEDUPE_TTL", THREE_DAYS, minimum=THREE_DAYS),
            run_deadline=float(env.integer("GATEWAY_RUN_DEADLINE", 600, minimum=1)),
            concurrency=env.integer("GATEWAY_CONCURRENCY", 100, minimum=1),
            log_level=env.choice("GATEWAY_LOG_LEVEL", "INFO", _LOG_LEVELS),
            agent=_read_agent(env),
            slack=_read_slack(env),
            github=_read_github(env),
            stripe=_read_stripe(env),
            llm=_read_llm(env),
        )
        _check_cross_settings(settings)
        return settings

    @property
    def enabled_platforms(self) -> tuple[str, ...]:
        """Names of the platforms whose signing secret is set, in route order."""
        return tuple(name for name in ("slack", "github", "stripe") if self.signing_secrets(name))

    def signing_secrets(self, platform: str) -> tuple[str, ...]:
        """The accepted signing secrets of ``platform`` (empty when it is off)."""
        return {
            "slack": self.slack.signing_secrets,
            "github": self.github.webhook_secrets,
            "stripe": self.stripe.webhook_secrets,
        }.get(platform, ())

    def max_body(self, platform: str) -> int:
        """The body cap of ``platform`` in bytes."""
        return {"slack": self.slack.max_body, "github": self.github.max_body, "stripe": self.stripe.max_body}[
            platform
        ]


def redacted(settings: Settings) -> dict[str, str]:
    """The effective settings as ``VARIABLE -> value``, secrets shown only as set/unset."""
    values = _as_variables(settings)
    return {
        name: ("<set>" if values[name] else "<unset>")
        if name in SECRET_VARIABLES
        else (values[name] or "<unset>")
        for name in VARIABLES
    }


def _as_variables(s: Settings) -> dict[str, str]:
    join = ",".join
    return {
        "REDIS_URL": _redact_url(s.redis_url),
        "SLACK_SIGNING_SECRET": join(s.slack.signing_secrets),
        "SLACK_BOT_TOKEN": s.slack.bot_token or "",
        "SLACK_API_URL": s.slack.api_url,
        "SLACK_MAX_BODY": str(s.slack.max_body),
        "GITHUB_WEBHOOK_SECRET": join(s.github.webhook_secrets),
        "GITHUB_TOKEN": s.github.token or "",
        "GITHUB_APP_ID": s.github.app_id or "",
        # A key read from a file is reported through its path, not as GITHUB_APP_PRIVATE_KEY.
        "GITHUB_APP_PRIVATE_KEY": "" if s.github.app_private_key_path else (s.github.app_private_key or ""),
        "GITHUB_APP_PRIVATE_KEY_PATH": s.github.app_private_key_path or "",
        "GITHUB_API_URL": s.github.api_url,
        "GITHUB_MAX_BODY": str(s.github.max_body),
        "STRIPE_WEBHOOK_SECRET": join(s.stripe.webhook_secrets),
        "STRIPE_API_KEY": s.stripe.api_key or "",
        "STRIPE_API_BASE": s.stripe.api_base,
        "STRIPE_SLACK_CHANNEL": s.stripe.slack_channel or "",
        "STRIPE_MAX_BODY": str(s.stripe.max_body),
        "GATEWAY_AGENT": s.agent,
        "GATEWAY_QUEUE": s.queue_name,
        "GATEWAY_DEDUPE_TTL": str(s.dedupe_ttl),
        "GATEWAY_RUN_DEADLINE": f"{s.run_deadline:g}",
        "GATEWAY_CONCURRENCY": str(s.concurrency),
        "GATEWAY_LOG_LEVEL": s.log_level,
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


def _describe_prompt(setting: str | None) -> str:
    # A prompt may hold internal details: show where it comes from and its size, never its text.
    if not setting:
        return ""
    return setting if setting.startswith("@") else f"<text, {len(setting)} chars>"


def _redact_url(url: str) -> str:
    # A Redis URL may carry a password (redis://:pw@host); keep the host, hide the password.
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


class _Reader:
    """Typed access to the environment mapping; every error names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def optional(self, name: str) -> str | None:
        assert name in VARIABLES, name
        value = self._environ.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def secrets(self, name: str) -> tuple[str, ...]:
        raw = self.optional(name)
        if raw is None:
            return ()
        values = tuple(part.strip() for part in raw.split(","))
        if any(not value for value in values):
            raise ConfigError(name, "has an empty value between commas")
        return values

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {value}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default).upper()
        if value not in allowed:
            raise ConfigError(name, f"must be one of {', '.join(allowed)}")
        return value

    def matching(self, name: str, default: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.text(name, default)
        if not pattern.match(value):
            raise ConfigError(name, f"may only hold {what}, got {value!r}")
        return value

    def url(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not value.startswith(("http://", "https://")):
            raise ConfigError(name, f"must be an http:// or https:// URL, got {value!r}")
        return value


def _read_agent(env: _Reader) -> str:
    agent = env.text("GATEWAY_AGENT", "triage")
    if agent not in ("triage", "llm") and not _AGENT_SPEC.match(agent):
        raise ConfigError("GATEWAY_AGENT", "must be triage, llm or package.module:callable")
    return agent


def _read_slack(env: _Reader) -> SlackSettings:
    api_url = env.url("SLACK_API_URL", "https://slack.com/api/")
    return SlackSettings(
        signing_secrets=env.secrets("SLACK_SIGNING_SECRET"),
        bot_token=env.optional("SLACK_BOT_TOKEN"),
        # slack-sdk joins method names onto the base URL, so it must end with a slash.
        api_url=api_url if api_url.endswith("/") else api_url + "/",
        max_body=env.integer("SLACK_MAX_BODY", MIB, minimum=1),
    )


def _read_github(env: _Reader) -> GitHubSettings:
    key_text = env.optional("GITHUB_APP_PRIVATE_KEY")
    key_path = env.optional("GITHUB_APP_PRIVATE_KEY_PATH")
    if key_text and key_path:
        raise ConfigError("GITHUB_APP_PRIVATE_KEY_PATH", "set it or GITHUB_APP_PRIVATE_KEY, not both")
    if key_path:
        key_text = _read_key_file(key_path)
    return GitHubSettings(
        webhook_secrets=env.secrets("GITHUB_WEBHOOK_SECRET"),
        token=env.optional("GITHUB_TOKEN"),
        app_id=env.optional("GITHUB_APP_ID"),
        app_private_key=key_text,
        app_private_key_path=key_path,
        api_url=env.url("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
        max_body=env.integer("GITHUB_MAX_BODY", 25 * MIB, minimum=1),
    )


def _read_key_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError("GITHUB_APP_PRIVATE_KEY_PATH", f"cannot read {path}: {exc.strerror}") from None


def _read_stripe(env: _Reader) -> StripeSettings:
    return StripeSettings(
        webhook_secrets=env.secrets("STRIPE_WEBHOOK_SECRET"),
        api_key=env.optional("STRIPE_API_KEY"),
        api_base=env.url("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/"),
        slack_channel=env.optional("STRIPE_SLACK_CHANNEL"),
        max_body=env.integer("STRIPE_MAX_BODY", MIB, minimum=1),
    )


def _read_llm(env: _Reader) -> LLMSettings:
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
    path = setting[1:]
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError("LLM_SYSTEM_PROMPT", f"cannot read {path}: {exc.strerror}") from None
    if not text:
        raise ConfigError("LLM_SYSTEM_PROMPT", f"{path} is empty")
    return text


def _check_cross_settings(s: Settings) -> None:
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
