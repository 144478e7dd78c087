"""A fake Slack Web API: the methods a bot uses, a message store, and ``response_url`` endpoints.

Like Slack (https://api.slack.com/web), API errors are HTTP 200 with ``{"ok": false, "error": ...}``,
rate limits are HTTP 429 with ``Retry-After`` (each method's tier per workspace, or injected with
``fail_next``), every method takes POST (form or JSON) or GET, and arguments may come from the query
string or the body. The documented limits it enforces (``slack_rules``; sources in README.md): Block
Kit sizes, text truncation, ``conversations.replies`` paging and ``limit``, response-URL use count
and expiry, and the tiers; ``distribution="unlisted"`` is an app outside the Slack Marketplace.
A ``chat.update`` with text and no blocks drops the message's blocks, as Slack's does; ``press``
and ``press_feedback`` give the ``block_actions`` payload of a button press (``slack_interactions``).
The agent surface (``assistant.threads.*``, ``chat.*Stream``) is ``slack_agent``: its state and
rules, with ``status``, ``title``, ``suggested_prompts``, ``stream`` and ``expire_stream`` here.
"""

from __future__ import annotations

import base64
import copy
import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any

from tests.fakes import slack_interactions
from tests.fakes import slack_rules as rules
from tests.fakes.server import FakeServer, Handler, Reply, Request, Route, route
from tests.fakes.slack_agent import AgentSurface
from tests.fakes.socket_mode import SocketModeFake

DEFAULT_TOKEN = "xoxb-fake-bot-token"
BOT_USER_ID = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
TEAM_ID = "T0FAKE"

Message = dict[str, Any]


def _ok(**fields: Any) -> Reply:
    return Reply(200, {"ok": True, **fields})


def _error(error: str, status: int = 200) -> Reply:
    return Reply(status, {"ok": False, "error": error})


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


class SlackFake(FakeServer):
    """Slack Web API at ``base_url`` (``http://127.0.0.1:<port>/api/``), for ``WebClient(base_url=...)``."""

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        prefix: str = "/api",
        distribution: str = "internal",
        rate_limits: dict[str, int] | None = None,
        agent: bool = True,
        stream_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``agent=False``: an app without the Agent feature; ``stream_ttl``: seconds after which a
        stream leaves the streaming state by itself; ``clock``: for status and stream timeouts."""
        self.tokens = tuple(tokens)
        self.distribution = distribution  # internal | marketplace | unlisted
        unlisted = rules.UNLISTED_PER_MINUTE if distribution == "unlisted" else {}
        self.limits = rules.RateLimits({**rules.TIER_PER_MINUTE, **unlisted, **(rate_limits or {})})
        self.response_urls = rules.ResponseUrls()
        self._token_teams: dict[str, str] = {}  # tokens installed in other workspaces (oauth.v2.access)
        self.bot = {"user_id": BOT_USER_ID, "bot_id": BOT_ID, "team_id": TEAM_ID, "team": "Fake Workspace"}
        self._messages: dict[str, dict[str, Message]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._responses: dict[str, list[Any]] = {}
        self.ephemerals: list[Message] = []
        self.deleted: list[Message] = []
        self._last_micros = 0
        self._response_ids = itertools.count(1)
        self.socket_mode: SocketModeFake | None = None  # answers apps.connections.open when set
        self.client_id, self.client_secret = "111.222", "fake-client-secret"
        self._codes: dict[str, dict[str, Any]] = {}  # OAuth code -> the installation it grants
        self._refresh: dict[str, dict[str, Any]] = {}  # live refresh token -> the installation
        self._token_ids = itertools.count(1)
        self._agent = AgentSurface(
            self._messages, self._store_bot, bot_id=BOT_ID, agent=agent, stream_ttl=stream_ttl, clock=clock
        )
        super().__init__(prefix=prefix)

    @property
    def base_url(self) -> str:
        """The Web API base URL, with the trailing slash slack-sdk expects."""
        return super().base_url + "/"

    @property
    def token(self) -> str:
        """The first accepted bot token."""
        return self.tokens[0]

    def routes(self) -> Iterable[Route]:
        """Each method answers GET and POST, like Slack; response URLs need no token."""
        methods = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete,
            "conversations.replies": self._replies,
            "users.info": self._users_info,
            "assistant.threads.setStatus": self._agent_call(self._agent.set_status),
            "assistant.threads.setTitle": self._agent_call(self._agent.set_title),
            "assistant.threads.setSuggestedPrompts": self._agent_call(self._agent.set_suggested_prompts),
            "chat.startStream": self._agent_call(self._agent.start_stream),
            "chat.appendStream": self._agent_call(self._agent.append_stream),
            "chat.stopStream": self._agent_call(self._agent.stop_stream),
        }
        for name, handler in methods.items():
            yield route("POST", f"/{name}", self._limited(name, handler))
            yield route("GET", f"/{name}", self._limited(name, handler))
        yield route("POST", "/response/{key}", self._response, public=True, rooted=True)
        yield route("POST", "/apps.connections.open", self._connections_open, public=True)
        yield route("POST", "/oauth.v2.access", self._oauth_access, public=True)
        yield route("GET", "/apps.connections.open", lambda request: _error("invalid_request"), public=True)

    # -- seeding and inspection ------------------------------------------------------------------

    def seed_message(
        self, channel: str, text: str, *, ts: str | None = None, thread_ts: str | None = None, **fields: Any
    ) -> str:
        """Put a message in the store (e.g. a thread's earlier turns); return its ts."""
        with self._cond:
            fields.setdefault("user", "U0FAKEUSER")
            return self._store(
                channel, {"type": "message", "text": text, **fields}, ts=ts, thread_ts=thread_ts
            )

    def seed_user(self, user_id: str, *, name: str | None = None, **fields: Any) -> None:
        """Make ``users.info`` answer this profile for ``user_id``."""
        with self._cond:
            self._users[user_id] = {
                **self._default_user(user_id),
                **({"name": name} if name else {}),
                **fields,
            }

    def message(self, channel: str, ts: str) -> Message | None:
        """The stored message (after any updates), or None if it never existed or was deleted."""
        with self._cond:
            found = self._messages.get(channel, {}).get(ts)
            return copy.deepcopy(found)

    def messages(self, channel: str) -> list[Message]:
        """All stored messages of ``channel``, oldest first."""
        with self._cond:
            return copy.deepcopy(
                sorted(self._messages.get(channel, {}).values(), key=lambda m: _ts_key(m["ts"]))
            )

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The parent ``ts`` and its replies, oldest first (empty if there is no such parent)."""
        with self._cond:
            return copy.deepcopy(self._thread_of(channel, ts))

    def press(self, channel: str, ts: str, action_id: str, *, user: str = "U0FAKEUSER") -> dict[str, Any]:
        """The ``block_actions`` payload Slack sends when ``user`` presses button ``action_id`` of
        the stored message ``channel``/``ts`` (``LookupError`` if it has no such button)."""
        with self._cond:
            return slack_interactions.interaction(
                self._stored(channel, ts),
                channel=channel,
                action_id=action_id,
                user=user,
                team=TEAM_ID,
                response_url=self.response_url(),
            )

    def press_feedback(
        self, channel: str, ts: str, rating: str, *, user: str = "U0FAKEUSER"
    ) -> dict[str, Any]:
        """The ``block_actions`` payload of ``user`` clicking the good or bad (``rating``) feedback
        button of the stored message (``LookupError`` if it has no feedback buttons)."""
        with self._cond:
            return slack_interactions.feedback_interaction(
                self._stored(channel, ts),
                channel=channel,
                rating=rating,
                user=user,
                team=TEAM_ID,
                response_url=self.response_url(),
            )

    def _stored(self, channel: str, ts: str) -> Message:
        """The stored message ``channel``/``ts`` (``LookupError`` if there is none); hold ``_cond``."""
        message = self._messages.get(channel, {}).get(ts)
        if message is None:
            raise LookupError(f"no message {ts} in {channel}")
        return message

    def status(self, channel: str, thread_ts: str) -> dict[str, Any] | None:
        """The thread's status (``{"status", "loading_messages"}``), None once cleared or timed out."""
        with self._cond:
            return self._agent.status(channel, thread_ts)

    def statuses(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Every accepted ``assistant.threads.setStatus`` call's arguments for the thread, in order."""
        with self._cond:
            return self._agent.statuses(channel, thread_ts)

    def title(self, channel: str, thread_ts: str) -> str | None:
        """The thread's title (``assistant.threads.setTitle``), or None."""
        with self._cond:
            return self._agent.title(channel, thread_ts)

    def suggested_prompts(self, channel: str, thread_ts: str | None) -> dict[str, Any] | None:
        """The last ``{"title", "prompts"}`` set for the thread (``thread_ts`` None: for the channel)."""
        with self._cond:
            return self._agent.suggested_prompts(channel, thread_ts)

    def stream(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The stream behind message ``ts``: ``state``, ``chunks``, ``appends``, recipients and
        ``task_display_mode``; None if the bot never streamed that message."""
        with self._cond:
            return self._agent.stream(channel, ts)

    def expire_stream(self, channel: str, ts: str) -> None:
        """Slack's undocumented stream timeout: message ``ts`` leaves the streaming state now."""
        with self._cond:
            self._agent.expire(channel, ts)

    def response_url(self, key: str | None = None, *, issued_at: float | None = None) -> str:
        """A ``response_url`` for slash-command fixtures, issued ``issued_at`` (default now); what is
        posted to it lands in ``responses()``. Like Slack's, it takes 5 posts within 30 minutes."""
        key = key or f"R{next(self._response_ids):06d}"
        with self._cond:
            self.response_urls.issue(key, issued_at=issued_at)
        return f"{self.origin}/response/{key}"

    def responses(self, key_or_url: str) -> list[Any]:
        """JSON bodies posted to that response URL (or key), in order."""
        key = key_or_url.rsplit("/", 1)[-1]
        with self._cond:
            return copy.deepcopy(self._responses.get(key, []))

    def reset_state(self) -> None:
        """Forget messages, users, ephemerals, deletions and response-URL posts."""
        self._messages.clear()
        self._users.clear()
        self._responses.clear()
        self.ephemerals.clear()
        self.deleted.clear()
        self.limits.reset()
        self.response_urls.reset()
        self._agent.reset()

    # -- FakeServer hooks ------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Reply | None:
        """Bearer header or ``token`` argument, as Slack accepts; not_authed / invalid_auth otherwise."""
        header = request.headers.get("authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else _args(request).get("token")
        if not token:
            return _error("not_authed")
        return None if token in self.tokens else _error("invalid_auth")

    def not_found(self, request: Request) -> Reply:
        """Slack's answer to an unknown method."""
        return _error("unknown_method", 404)

    def fault_body(self, status: int) -> Any:
        """Slack's body for rate limits and failures."""
        return {"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"}

    # -- methods ---------------------------------------------------------------------------------

    def _limited(self, method: str, handler: Handler) -> Handler:
        """``handler`` behind the method's tier: HTTP 429 ``ratelimited`` with ``Retry-After``."""

        def answer(request: Request) -> Reply:
            args = _args(request)
            wait = self.limits.check(
                self._team_of(request), method, args.get("channel") or args.get("channel_id")
            )
            if wait is None:
                return handler(request)
            return Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(int(wait))})

        return answer

    @staticmethod
    def _agent_call(method: Callable[[dict[str, Any]], Reply]) -> Handler:
        return lambda request: method(_args(request))

    def _team_of(self, request: Request) -> str:
        """The workspace a request's token belongs to (limits are per workspace)."""
        header = request.headers.get("authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else str(_args(request).get("token"))
        return self._token_teams.get(token, self.bot["team_id"])

    def _auth_test(self, request: Request) -> Reply:
        bot = self.bot
        identity = {"team_id": bot["team_id"], "user_id": bot["user_id"], "bot_id": bot["bot_id"]}
        return _ok(
            url="https://fake.slack.com/",
            team=bot["team"],
            user="fakebot",
            is_enterprise_install=False,
            **identity,
        )

    def _post_message(self, request: Request) -> Reply:
        args = _args(request)
        if not args.get("channel"):
            return _error("channel_not_found")
        if not any(args.get(name) for name in ("text", "blocks", "attachments")):
            return _error("no_text")
        refused = _refusal(args)
        if refused is not None:
            return refused
        fields = _content(args) | {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "team": TEAM_ID}
        ts = self._store(args["channel"], fields, ts=None, thread_ts=args.get("thread_ts"))
        self._agent.on_bot_message(args["channel"], args.get("thread_ts"))  # a reply clears the status
        stored = copy.deepcopy(self._messages[args["channel"]][ts])
        return _ok(channel=args["channel"], ts=ts, message=stored, **_warnings(args))

    def _update(self, request: Request) -> Reply:
        args = _args(request)
        message = self._messages.get(args.get("channel", ""), {}).get(args.get("ts", ""))
        if message is None:
            return _error("message_not_found")
        if not any(args.get(name) for name in ("text", "blocks", "attachments")):
            return _error("no_text")
        refused = _refusal(args)
        if refused is not None:
            return refused
        if "text" in args and "blocks" not in args:
            message.pop("blocks", None)  # Slack: text without blocks replaces the blocks
        message.update(_content(args))
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        reply = {"channel": args["channel"], "ts": message["ts"], "text": message.get("text", "")}
        return _ok(**reply, message=copy.deepcopy(message), **_warnings(args))

    def _post_ephemeral(self, request: Request) -> Reply:
        args = _args(request)
        if not args.get("channel"):
            return _error("channel_not_found")
        if not args.get("user"):
            return _error("user_not_in_channel")
        ts = self._next_ts()
        self.ephemerals.append({"channel": args["channel"], "user": args["user"], "ts": ts, **_content(args)})
        return _ok(message_ts=ts)

    def _delete(self, request: Request) -> Reply:
        args = _args(request)
        message = self._messages.get(args.get("channel", ""), {}).pop(args.get("ts", ""), None)
        if message is None:
            return _error("message_not_found")
        self.deleted.append({"channel": args["channel"], **message})
        return _ok(channel=args["channel"], ts=message["ts"])

    def _replies(self, request: Request) -> Reply:
        """A page of the thread holding ``ts``, oldest first: the parent, then replies within
        ``oldest``/``latest``; ``limit`` (default and most: 1000, unlisted apps 15) per page, and
        ``next_cursor`` to the rest. Metadata only with ``include_all_metadata``. The parent is on the
        first page only (Slack does not document whether later pages repeat it)."""
        args = _args(request)
        if not args.get("channel"):
            return _error("channel_not_found")
        thread = self._thread_of(args["channel"], args.get("ts", ""))
        if not thread:
            return _error("thread_not_found")
        start = rules.cursor_offset(args.get("cursor"))
        if start is None:
            return _error("invalid_cursor")
        replies = [m for m in thread[1:] if rules.within(m["ts"], args)]
        members = [thread[0], *replies] if start == 0 else replies
        begin = 0 if start == 0 else start - 1
        limit = self._replies_limit(args.get("limit"))
        page = [rules.without_metadata(m, args) for m in members[begin : begin + limit]]
        more = begin + limit < len(members)
        cursor = rules.cursor(start + len(page)) if more else ""
        return _ok(messages=page, has_more=more, response_metadata={"next_cursor": cursor})

    def _replies_limit(self, asked: Any) -> int:
        most = rules.UNLISTED_REPLIES_LIMIT if self.distribution == "unlisted" else rules.REPLIES_LIMIT
        try:
            number = int(asked)
        except (TypeError, ValueError):
            return most
        return most if number <= 0 else min(number, most)

    def _users_info(self, request: Request) -> Reply:
        user_id = _args(request).get("user")
        if not user_id:
            return _error("user_not_found")
        return _ok(user=copy.deepcopy(self._users.get(user_id) or self._default_user(user_id)))

    def grant_code(
        self, *, team_id: str, team_name: str = "Other Workspace", rotating: bool = False, **fields: Any
    ) -> str:
        """An OAuth code (what Slack appends to the redirect) that installs the app in ``team_id``."""
        code = f"code-{next(self._token_ids)}"
        with self._cond:
            self._codes[code] = {"team": {"id": team_id, "name": team_name}, "rotating": rotating, **fields}
        return code

    def _oauth_access(self, request: Request) -> Reply:
        """``oauth.v2.access``: the client's id and secret (Basic auth or form), then a code once, or a
        refresh token once (``grant_type=refresh_token``), for a new token pair."""
        args = _args(request)
        if _client_credentials(request, args) != (self.client_id, self.client_secret):
            return _error(
                "invalid_client_id"
                if args.get("client_id", self.client_id) != self.client_id
                else "bad_client_secret"
            )
        if args.get("grant_type") == "refresh_token":
            grant = self._refresh.pop(str(args.get("refresh_token")), None)  # a refresh token works once
            return _error("invalid_refresh_token") if grant is None else self._issue(grant)
        grant = self._codes.pop(str(args.get("code")), None)  # a code works once
        return _error("invalid_code") if grant is None else self._issue(grant)

    def _issue(self, grant: dict[str, Any]) -> Reply:
        serial = next(self._token_ids)
        prefix = "xoxe.xoxb-1-" if grant["rotating"] else "xoxb-"
        token = f"{prefix}{grant['team']['id']}-{serial}"
        self.tokens = (*self.tokens, token)
        self._token_teams[token] = grant["team"]["id"]
        fields = {k: v for k, v in grant.items() if k != "rotating"}
        body = {"access_token": token, "token_type": "bot", "scope": "chat:write,app_mentions:read"}
        body |= {
            "bot_user_id": BOT_USER_ID,
            "app_id": "A0FAKEAPP",
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if grant["rotating"]:
            refresh = f"xoxe-1-refresh-{serial}"
            self._refresh[refresh] = grant
            body |= {"refresh_token": refresh, "expires_in": 43200}
        return _ok(**body, **fields)

    def _connections_open(self, request: Request) -> Reply:
        """Socket Mode's URL: app-level token (``xapp-``) in the Authorization header only."""
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return _error("not_authed")  # Slack: a token passed as a POST parameter is an error
        if self.socket_mode is None or header[len("Bearer ") :] not in self.socket_mode.app_tokens:
            return _error("invalid_auth")
        return _ok(url=self.socket_mode.issue_url())

    def _response(self, request: Request) -> Reply:
        """Plain-text ``ok``, as Slack answers a response URL; refused past 5 uses or 30 minutes."""
        key = request.params["key"]
        refused = self.response_urls.refusal(key)
        if refused is not None:
            return Reply(404, refused)
        self._responses.setdefault(key, []).append(request.body)
        return Reply(200, "ok")

    # -- store -----------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        self._last_micros = max(time.time_ns() // 1000, self._last_micros + 1)
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"

    def _store(self, channel: str, fields: Message, *, ts: str | None, thread_ts: str | None) -> str:
        if ts is None:
            ts = self._next_ts()
        seconds, micros = _ts_key(ts)
        self._last_micros = max(self._last_micros, seconds * 1_000_000 + micros)
        message = {**fields, "ts": ts}
        if thread_ts and thread_ts != ts:
            message["thread_ts"] = thread_ts
            self._note_reply(channel, thread_ts, message)
        self._messages.setdefault(channel, {})[ts] = message
        return ts

    def _store_bot(self, channel: str, fields: Message, thread_ts: str | None) -> str:
        """Store a message the bot posts (a stream's), with the bot's identity, on the one ``ts`` clock."""
        bot = {"user": BOT_USER_ID, "bot_id": BOT_ID, "team": TEAM_ID}
        return self._store(channel, {**fields, **bot}, ts=None, thread_ts=thread_ts)

    def _note_reply(self, channel: str, thread_ts: str, reply: Message) -> None:
        parent = self._messages.get(channel, {}).get(thread_ts)
        if parent is not None:
            parent["thread_ts"] = thread_ts
            parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
            parent["latest_reply"] = reply["ts"]

    def _thread_of(self, channel: str, ts: str) -> list[Message]:
        stored = self._messages.get(channel, {})
        if ts not in stored:
            return []
        ts = stored[ts].get("thread_ts") or ts  # any message of a thread names the thread
        members = [m for m in stored.values() if m["ts"] == ts or m.get("thread_ts") == ts]
        return sorted(members, key=lambda m: _ts_key(m["ts"]))

    def _default_user(self, user_id: str) -> dict[str, Any]:
        name = user_id.lower()
        is_bot = user_id == BOT_USER_ID
        profile = {"real_name": name.title(), "display_name": name, "email": f"{name}@example.com"}
        fields = {"name": name, "real_name": name.title(), "is_bot": is_bot, "deleted": False, "tz": "UTC"}
        return {"id": user_id, "team_id": TEAM_ID, **fields, "profile": profile}


def _args(request: Request) -> dict[str, Any]:
    """Slack arguments: the query string, then a form or JSON object body (single values only)."""
    args: dict[str, Any] = {k: v[-1] if isinstance(v, list) else v for k, v in request.query.items()}
    if isinstance(request.body, dict):
        structured = request.headers.get("content-type", "").startswith("application/json")
        args.update(
            {k: v[-1] if isinstance(v, list) and not structured else v for k, v in request.body.items()}
        )
    return args


def _client_credentials(request: Request, args: dict[str, Any]) -> tuple[str, str]:
    """Client id and secret from HTTP Basic auth (preferred by Slack), else the form."""
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        user, _, password = base64.b64decode(header[len("Basic ") :]).decode().partition(":")
        return user, password
    return str(args.get("client_id", "")), str(args.get("client_secret", ""))


def _content(args: dict[str, Any]) -> Message:
    """The message fields a post or an update sets (text past 40,000 characters cut, as Slack does)."""
    fields = {name: args[name] for name in ("text", "blocks", "attachments", "metadata") if name in args}
    if "blocks" in fields:
        fields["blocks"] = rules.parse_blocks(fields["blocks"])
    if "text" in fields:
        fields["text"] = rules.truncated(fields["text"])[0]
    return fields


def _refusal(args: dict[str, Any]) -> Reply | None:
    """Slack's refusal of a post or update's blocks or attachments, if it would refuse them."""
    if args.get("blocks") not in (None, "", []):
        errors = rules.block_errors(rules.parse_blocks(args["blocks"]))
        if errors:
            return Reply(200, rules.invalid_blocks_body(errors))
    attachments = rules.parse_blocks(args.get("attachments"))
    if isinstance(attachments, list) and len(attachments) > rules.MAX_ATTACHMENTS:
        return _error("too_many_attachments")
    return None


def _warnings(args: dict[str, Any]) -> dict[str, Any]:
    warnings = rules.truncated(args.get("text"))[1]
    if not warnings:
        return {}
    return {"response_metadata": {"messages": [rules.TRUNCATED_WARNING], "warnings": warnings}}
