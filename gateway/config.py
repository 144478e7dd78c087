"""The web side's settings, read once from an injectable mapping (normally ``os.environ``).

Every variable the ingress reads is in ``VARIABLES`` with a one-line meaning: the shared ones
below, and each platform's own (``Platform.variables``: its signing secret and body cap). A
platform is on when its signing secret is set. Missing or contradictory settings raise
``ConfigError`` naming the variable, so start-up stops there. The worker's settings (tokens,
the agent, ``LLM_*``) are the worker side's: ``handlers.config``, built on ``Reader`` here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from dotenv import dotenv_values

from gateway.auth import METRICS_MODES, MetricsAccess
from gateway.errors import ConfigError
from gateway.platforms import PLATFORMS
from gateway.runs import RUN_TTL
from gateway.tracing import MODES as TRACING_MODES
from gateway.tracing import require_packages
from gateway.types import Platform

__all__ = [
    "ENV_FILE_VARIABLE",
    "SECRET_VARIABLES",
    "VARIABLES",
    "EnvFile",
    "PlatformSettings",
    "Reader",
    "Settings",
    "load_env_file",
    "read_env_file",
    "redact",
    "redact_url",
    "redacted",
]

THREE_DAYS = 3 * 24 * 3600

ENV_FILE_VARIABLE = "GATEWAY_ENV_FILE"

_SHARED_VARIABLES: dict[str, str] = {
    ENV_FILE_VARIABLE: "settings file the commands read at start, the environment winning (default .env)",
    "REDIS_URL": "Redis holding claims, the queue and run state (default redis://localhost:6379/0)",
    "GATEWAY_QUEUE": "name of the RQ queue deliveries go to (default gateway)",
    "GATEWAY_DEDUPE_TTL": "seconds a delivery id stays claimed (default and minimum 259200, 3 days)",
    "GATEWAY_RUN_DEADLINE": "seconds an agent run may take before it ends as timed out (default 600)",
    "GATEWAY_LOG_LEVEL": "log level: DEBUG, INFO (default), WARNING, ERROR",
    "GATEWAY_RUN_RETENTION": "seconds a run record, its events and its list entry are kept (default 7 days)",
    "GATEWAY_API_TOKEN": "bearer token(s) of the runs API and the console, comma-separated; unset: both off",
    "GATEWAY_ENCRYPTION_KEY": "Fernet key(s) encrypting tokens kept in Redis, comma-separated, newest first",
    "GATEWAY_METRICS": "who may read metrics: local (default), token, open, off",
    "GATEWAY_METRICS_TOKEN": "bearer token(s) a metrics scraper sends, comma-separated (turns on token)",
    "GATEWAY_TRACING": "OpenTelemetry traces: off (default) or otlp (the otel extra; OTEL_* settings)",
}

VARIABLES: dict[str, str] = {
    **_SHARED_VARIABLES,
    **{name: meaning for platform in PLATFORMS.values() for name, meaning in platform.variables.items()},
}
"""Every setting the web side reads, with its meaning."""

SECRET_VARIABLES = frozenset(
    {platform.secret_variable for platform in PLATFORMS.values()}
    | {name for platform in PLATFORMS.values() for name in platform.variables if name.endswith("_SECRET")}
    | {"GATEWAY_ENCRYPTION_KEY", "GATEWAY_API_TOKEN", "GATEWAY_METRICS_TOKEN"}
)
"""Variables shown only as set/unset: signing secrets, other ``*_SECRET`` s, the encryption keys,
the runs API's and the metrics' tokens."""

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class PlatformSettings:
    """One platform's inbound settings: its signing secrets (several during rotation), body cap,
    and the values of its other variables that are set (``options``: app credentials, API URL)."""

    name: str
    signing_secrets: tuple[str, ...] = field(repr=False)
    max_body: int
    options: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)


@dataclass(frozen=True)
class Settings:
    """What the web app, the CLI and the worker runtime share: Redis, the queue, the platforms."""

    redis_url: str = field(repr=False)  # may carry a password
    queue_name: str
    dedupe_ttl: int
    run_deadline: float
    log_level: str
    platforms: tuple[PlatformSettings, ...]
    env_file: str = ".env"
    encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    run_retention: int = RUN_TTL
    metrics: MetricsAccess = field(default_factory=MetricsAccess)
    tracing: str = "off"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; raise ``ConfigError`` naming the first bad variable."""
        env = Reader(os.environ if environ is None else environ, VARIABLES)
        return cls(
            redis_url=env.text("REDIS_URL", "redis://localhost:6379/0"),
            queue_name=env.matching("GATEWAY_QUEUE", "gateway", _QUEUE_NAME, "letters, digits, _ and -"),
            dedupe_ttl=env.integer("GATEWAY_DEDUPE_TTL", THREE_DAYS, minimum=THREE_DAYS),
            run_deadline=float(env.integer("GATEWAY_RUN_DEADLINE", 600, minimum=1)),
            log_level=env.choice("GATEWAY_LOG_LEVEL", "INFO", _LOG_LEVELS),
            platforms=tuple(_read_platform(env, platform) for platform in PLATFORMS.values()),
            env_file=env.text(ENV_FILE_VARIABLE, ".env"),
            encryption_keys=_read_encryption_keys(env),
            api_tokens=env.secrets("GATEWAY_API_TOKEN"),
            run_retention=env.integer("GATEWAY_RUN_RETENTION", RUN_TTL, minimum=3600),
            metrics=_read_metrics_access(env),
            tracing=_read_tracing(env),
        )

    @property
    def enabled_platforms(self) -> tuple[str, ...]:
        """Names of the platforms whose signing secret is set, in route order."""
        return tuple(p.name for p in self.platforms if p.signing_secrets)

    def signing_secrets(self, platform: str) -> tuple[str, ...]:
        """The accepted signing secrets of ``platform`` (empty when it is off or unknown)."""
        return next((p.signing_secrets for p in self.platforms if p.name == platform), ())

    def option(self, platform: str, name: str) -> str | None:
        """The value of ``platform``'s own variable ``name``, or ``None`` when it is unset."""
        return next((p.options.get(name) for p in self.platforms if p.name == platform), None)

    def max_body(self, platform: str) -> int:
        """The body cap of ``platform`` in bytes."""
        return next(p.max_body for p in self.platforms if p.name == platform)

    def as_variables(self) -> dict[str, str]:
        """The effective value of every variable in ``VARIABLES`` (secrets in the clear: redact them)."""
        values = {
            ENV_FILE_VARIABLE: self.env_file,
            "REDIS_URL": redact_url(self.redis_url),
            "GATEWAY_QUEUE": self.queue_name,
            "GATEWAY_DEDUPE_TTL": str(self.dedupe_ttl),
            "GATEWAY_RUN_DEADLINE": f"{self.run_deadline:g}",
            "GATEWAY_LOG_LEVEL": self.log_level,
            "GATEWAY_RUN_RETENTION": str(self.run_retention),
            "GATEWAY_API_TOKEN": ",".join(self.api_tokens),
            "GATEWAY_ENCRYPTION_KEY": ",".join(self.encryption_keys),
            "GATEWAY_METRICS": self.metrics.mode,
            "GATEWAY_METRICS_TOKEN": ",".join(self.metrics.tokens),
            "GATEWAY_TRACING": self.tracing,
        }
        for settings in self.platforms:
            platform = PLATFORMS[settings.name]
            values.update({name: settings.options.get(name, "") for name in platform.variables})
            values[platform.secret_variable] = ",".join(settings.signing_secrets)
            values[platform.max_body_variable] = str(settings.max_body)
        return values


def load_env_file(environ: MutableMapping[str, str] | None = None) -> tuple[Path, list[str]]:
    """Add the settings of the ``.env`` file (``GATEWAY_ENV_FILE``) to ``environ`` where unset.

    The environment wins: a variable it already has is left alone, so ``FOO=1 gateway dev``
    overrides the file. Values are taken literally (no ``${VAR}`` expansion: a secret may hold
    ``$``). Returns the file and the names it set; a missing file sets nothing.
    """
    target = os.environ if environ is None else environ
    settings = read_env_file(target)
    added = [name for name in settings.values if name not in target]
    for name in added:
        target[name] = settings.values[name]
    return settings.path, added


@dataclass(frozen=True)
class EnvFile:
    """The settings file, what it holds, and the environment whose values win over it."""

    path: Path
    values: Mapping[str, str] = field(repr=False)
    environment: Mapping[str, str] = field(repr=False)

    def merged(self) -> dict[str, str]:
        """The settings the commands run with: the file's, the environment's over them."""
        return {**self.values, **self.environment}


def read_env_file(environ: Mapping[str, str] | None = None) -> EnvFile:
    """The settings file ``GATEWAY_ENV_FILE`` names (default ``.env`` in the working directory),
    its values taken literally; none when it does not exist. ``ConfigError`` if it cannot be read."""
    environment = os.environ if environ is None else environ
    path = Path(environment.get(ENV_FILE_VARIABLE, "").strip() or ".env")
    if not path.is_file():
        return EnvFile(path, {}, environment)
    try:
        values = dotenv_values(path, interpolate=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(ENV_FILE_VARIABLE, f"cannot read {path}: {exc}") from None
    return EnvFile(path, {name: value for name, value in values.items() if value is not None}, environment)


def redacted(settings: Settings) -> dict[str, str]:
    """The effective web settings as ``VARIABLE -> value``, secrets shown only as set/unset."""
    return redact(settings.as_variables(), SECRET_VARIABLES)


def redact(values: Mapping[str, str], secret: Iterable[str]) -> dict[str, str]:
    """``values`` with every ``secret`` variable shown as ``<set>``/``<unset>``, empty ones ``<unset>``."""
    hidden = frozenset(secret)
    return {
        name: ("<set>" if value else "<unset>") if name in hidden else (value or "<unset>")
        for name, value in values.items()
    }


def redact_url(url: str) -> str:
    """``url`` with a password hidden (``redis://:pw@host`` -> ``redis://:***@host``)."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


class Reader:
    """Typed access to the environment mapping; every error names the variable.

    ``variables`` is the table of settings the caller may read: reading another is a bug.
    """

    def __init__(self, environ: Mapping[str, str], variables: Mapping[str, str]) -> None:
        self._environ = environ
        self._variables = variables

    def optional(self, name: str) -> str | None:
        """The value, stripped; ``None`` when unset or blank."""
        assert name in self._variables, name
        value = self._environ.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        """The value, or ``default``."""
        return self.optional(name) or default

    def secrets(self, name: str) -> tuple[str, ...]:
        """Comma-separated values (rotation), none empty; ``()`` when unset."""
        raw = self.optional(name)
        if raw is None:
            return ()
        values = tuple(part.strip() for part in raw.split(","))
        if any(not value for value in values):
            raise ConfigError(name, "has an empty value between commas")
        return values

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        """A whole number of at least ``minimum``."""
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
        """One of ``allowed`` (compared upper-case)."""
        value = self.text(name, default).upper()
        if value not in allowed:
            raise ConfigError(name, f"must be one of {', '.join(allowed)}")
        return value

    def matching(self, name: str, default: str, pattern: re.Pattern[str], what: str) -> str:
        """A value ``pattern`` matches; ``what`` says what it may hold."""
        value = self.text(name, default)
        if not pattern.match(value):
            raise ConfigError(name, f"may only hold {what}, got {value!r}")
        return value

    def url(self, name: str, default: str) -> str:
        """An ``http://`` or ``https://`` URL."""
        value = self.text(name, default)
        if not value.startswith(("http://", "https://")):
            raise ConfigError(name, f"must be an http:// or https:// URL, got {value!r}")
        return value


def _read_metrics_access(env: Reader) -> MetricsAccess:
    """``GATEWAY_METRICS``: ``token`` when only tokens are set; tokens with another mode contradict."""
    tokens = env.secrets("GATEWAY_METRICS_TOKEN")
    mode = env.text("GATEWAY_METRICS", "token" if tokens else "local").lower()
    if mode not in METRICS_MODES:
        raise ConfigError("GATEWAY_METRICS", f"must be one of {', '.join(METRICS_MODES)}, got {mode!r}")
    if mode == "token" and not tokens:
        raise ConfigError("GATEWAY_METRICS", "is token: set GATEWAY_METRICS_TOKEN to the scraper's token(s)")
    if mode != "token" and tokens:
        raise ConfigError("GATEWAY_METRICS_TOKEN", f"is set but GATEWAY_METRICS is {mode}: unset one")
    return MetricsAccess(mode, tokens)


def _read_tracing(env: Reader) -> str:
    """``GATEWAY_TRACING``: ``otlp`` needs the otel extra, checked now rather than at the first span."""
    mode = env.text("GATEWAY_TRACING", "off").lower()
    if mode not in TRACING_MODES:
        raise ConfigError("GATEWAY_TRACING", f"must be one of {', '.join(TRACING_MODES)}, got {mode!r}")
    if mode == "otlp":
        require_packages()
    return mode


def _read_platform(env: Reader, platform: Platform) -> PlatformSettings:
    inbound = {platform.secret_variable, platform.max_body_variable}
    options = {name: env.optional(name) for name in platform.variables if name not in inbound}
    for name, value in options.items():
        if value and name.endswith("_URL"):
            env.url(name, value)  # refuses anything but http(s)
    return PlatformSettings(
        name=platform.name,
        signing_secrets=env.secrets(platform.secret_variable),
        max_body=env.integer(platform.max_body_variable, platform.default_max_body, minimum=1),
        options={name: value for name, value in options.items() if value},
    )


def _read_encryption_keys(env: Reader) -> tuple[str, ...]:
    keys = env.secrets("GATEWAY_ENCRYPTION_KEY")
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(
                "GATEWAY_ENCRYPTION_KEY",
                "each value must be a Fernet key (32 url-safe base64-encoded bytes; make one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')",
            ) from None
    return keys
