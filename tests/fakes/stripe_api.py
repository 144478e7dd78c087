"""A fake Stripe API: the v1 objects a webhook handler reads and annotates, and v2 thin events.

Like https://docs.stripe.com/api: v1 POSTs are form-encoded with ``a[b]=c`` nesting, ``metadata[key]=``
(empty) deletes a key, a repeated ``Idempotency-Key`` with the same body replays the first result
without applying it again (a different body is an ``idempotency_error``), ``Stripe-Account`` scopes
objects to a connected account (``Stripe-Context`` supersedes it, and alone scopes v2 requests),
and errors use Stripe's ``{"error": {...}}`` shape. ``stripe_rules`` holds what it refuses and how it
shapes objects by ``Stripe-Version`` (seed objects in the newest shape: subscription periods on
the items, an invoice's subscription under ``parent.subscription_details``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

from tests.fakes import stripe_rules as rules
from tests.fakes.server import FakeServer, Handler, Params, Reply, Request, Route, route
from tests.fakes.stripe_events import EventLists

DEFAULT_API_KEY = "sk_test_fakestripekey"
API_VERSION = "2025-01-27.acacia"

Obj = dict[str, Any]

# collection in the path -> (object type, id prefix, default fields, whether POST updates it)
TYPES: dict[str, tuple[str, str, Obj, bool]] = {
    "customers": ("customer", "cus", {"email": None, "name": None}, True),
    "charges": (
        "charge",
        "ch",
        {"amount": 1000, "currency": "usd", "status": "succeeded", "paid": True},
        True,
    ),
    "payment_intents": (
        "payment_intent",
        "pi",
        {"amount": 1000, "currency": "usd", "status": "succeeded"},
        True,
    ),
    "invoices": (
        "invoice",
        "in",
        {"status": "paid", "currency": "usd", "amount_due": 1000, "amount_paid": 1000},
        True,
    ),
    "disputes": ("dispute", "dp", {"amount": 1000, "currency": "usd", "status": "needs_response"}, True),
    "subscriptions": (
        "subscription",
        "sub",
        {"status": "active", "items": {"object": "list", "data": []}},
        True,
    ),
    "events": (
        "event",
        "evt",
        {
            "type": "ping",
            "data": {"object": {}},
            "api_version": API_VERSION,
            "pending_webhooks": 0,  # > 0: not delivered yet (``delivery_success=false`` lists it)
            "request": {"id": None, "idempotency_key": None},
        },
        False,
    ),
}
_COLLECTIONS = {object_type: collection for collection, (object_type, *_) in TYPES.items()}
_LISTABLE = ("charges", "invoices")
_PAGING = frozenset({"limit", "starting_after", "ending_before"})
_ERROR_TYPES = {
    402: ("card_error", "card_declined"),
    409: ("invalid_request_error", "lock_timeout"),
    429: ("invalid_request_error", "rate_limit"),
}
_NO_KEY = "You did not provide an API key. Provide it in the Authorization header, using Bearer auth."


def stripe_error(status: int, message: str, *, kind: str = "invalid_request_error", **fields: Any) -> Reply:
    """A Stripe error answer."""
    return Reply(status, {"error": {"message": message, "type": kind, **fields}})


def decode_form(params: Params) -> Obj:
    """Stripe's bracketed form keys (``metadata[k]``, ``items[0][price]``) to nested dicts and lists."""
    tree: Obj = {}
    for key, value in params.items():
        names = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        node = tree
        for name in names[:-1]:
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
        node[names[-1]] = value[-1] if isinstance(value, list) else value
    decoded: Obj = _listify(tree)
    return decoded


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_listify(node[key]) for key in sorted(node, key=int)]
    return {key: _listify(value) for key, value in node.items()}


def apply_update(obj: Obj, changes: Obj) -> None:
    """Stripe update semantics: metadata merges (an empty value deletes a key, ``metadata=`` clears it);
    other fields are replaced; ``expand`` is a request option, not a change."""
    for name, value in changes.items():
        if name == "metadata":
            _merge_metadata(obj.setdefault("metadata", {}), value)
        elif name != "expand":
            obj[name] = None if value == "" else value


def _merge_metadata(metadata: Obj, changes: Any) -> None:
    if not isinstance(changes, dict):
        metadata.clear()
        return
    for key, value in changes.items():
        if value == "":
            metadata.pop(key, None)
        else:
            metadata[key] = value


class StripeFake(EventLists, FakeServer):
    """Stripe API at ``base_url``, for ``stripe.StripeClient(key, base_addresses={"api": base_url})``."""

    def __init__(self, *, api_keys: Iterable[str] = (DEFAULT_API_KEY,)) -> None:
        self.api_keys = tuple(api_keys)
        self._objects: dict[tuple[str | None, str, str], Obj] = {}
        self._thin_events: dict[tuple[str | None, str], Obj] = {}
        self._idempotent: dict[tuple[str, str | None, str], tuple[str, bytes, Reply]] = {}
        self._init_event_lists()
        super().__init__()

    @property
    def api_key(self) -> str:
        """The first accepted secret key."""
        return self.api_keys[0]

    def routes(self) -> Iterable[Route]:
        """Retrieve and update per collection, two customer-filtered lists, the v1 and v2 event lists
        (``stripe_events``) and v2 event retrieval."""
        yield route("GET", "/v1/events", self._list_events)
        yield route("GET", "/v2/core/events", self._list_thin_events)
        for collection, (_, _, _, updatable) in TYPES.items():
            yield route("GET", f"/v1/{collection}/{{id}}", self._retrieve)
            if updatable:
                yield route("POST", f"/v1/{collection}/{{id}}", self._idempotently(self._update))
        for collection in _LISTABLE:
            yield route("GET", f"/v1/{collection}", self._list)
        yield route("GET", "/v2/core/events/{id}", self._retrieve_thin_event)

    # -- seeding and inspection ------------------------------------------------------------------

    def seed(
        self, object_type: str, object_id: str | None = None, *, account: str | None = None, **fields: Any
    ) -> Obj:
        """Store an object (``"charge"``, ``"payment_intent"``, ``"event"``...), optionally under a connected
        ``account``; missing fields get defaults. Returns a copy of what was stored."""
        collection = _COLLECTIONS[object_type]
        _, prefix, defaults, _ = TYPES[collection]
        object_id = object_id or f"{prefix}_{secrets.token_hex(12)}"
        base = {"id": object_id, "object": object_type, "created": int(time.time()), "livemode": False}
        extra: Obj = {} if object_type == "event" else {"metadata": {}}
        obj = base | copy.deepcopy(defaults) | extra | copy.deepcopy(fields)
        with self._cond:
            self._objects[(account, object_type, object_id)] = obj
            return copy.deepcopy(obj)

    def seed_thin_event(
        self, event_type: str, event_id: str | None = None, *, account: str | None = None, **fields: Any
    ) -> Obj:
        """Store a v2 event for ``GET /v2/core/events/{id}``; ``fields`` may add ``related_object``..."""
        event_id = event_id or f"evt_{secrets.token_hex(12)}"
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        event = {"id": event_id, "object": "v2.core.event", "type": event_type, "created": created}
        event |= {"livemode": False, "context": account, "reason": None} | copy.deepcopy(fields)
        with self._cond:
            self._thin_events[(account, event_id)] = event
            return copy.deepcopy(event)

    def get(self, object_type: str, object_id: str, *, account: str | None = None) -> Obj | None:
        """The stored object as it is now (after updates), or None."""
        with self._cond:
            return copy.deepcopy(self._objects.get((account, object_type, object_id)))

    def reset_state(self) -> None:
        """Forget objects, thin events and stored idempotent results."""
        self._objects.clear()
        self._thin_events.clear()
        self._idempotent.clear()
        self._event_pages.clear()

    # -- FakeServer hooks ------------------------------------------------------------------------

    def decorate(self, reply: Reply) -> None:
        """Stripe's ``Request-Id``, on every response."""
        reply.headers.setdefault("Request-Id", f"req_{secrets.token_hex(7)}")

    def authenticate(self, request: Request) -> Reply | None:
        """A configured secret key as Bearer (or Basic user name), as Stripe accepts; then a known
        ``Stripe-Version`` and well-formed ``Stripe-Account``/``Stripe-Context`` headers."""
        key = _api_key(request.headers.get("authorization", ""))
        if not key:
            return stripe_error(401, _NO_KEY)
        if key not in self.api_keys:
            return stripe_error(401, f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}")
        return rules.version_refusal(request) or rules.scope_of(request)[1]

    def not_found(self, request: Request) -> Reply:
        """Stripe's answer for an unknown URL."""
        return stripe_error(404, f"Unrecognized request URL ({request.method}: {request.path}).")

    def fault_body(self, status: int) -> Any:
        """Stripe's error body for ``status``."""
        kind, code = _ERROR_TYPES.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", None)
        )
        message = (
            "Too many requests hit the API too quickly." if status == 429 else "An injected error occurred."
        )
        return stripe_error(status, message, kind=kind, **({"code": code} if code else {})).body

    # -- endpoints -------------------------------------------------------------------------------

    def _idempotently(self, handler: Handler) -> Handler:
        """Wrap a POST handler: replay the first result for a repeated ``Idempotency-Key``."""

        def answer(request: Request) -> Reply:
            key = request.headers.get("idempotency-key")
            if not key:
                return handler(request)
            slot = (_api_key(request.headers.get("authorization", "")), _account(request), key)
            stored = self._idempotent.get(slot)
            if stored is not None:
                return _replay(stored, request, key)
            reply = handler(request)
            if reply.status < 400:
                self._idempotent[slot] = (request.path, request.raw, reply)
            return reply

        return answer

    def _retrieve(self, request: Request) -> Reply:
        object_type = TYPES[request.path.split("/")[2]][0]
        obj = self._objects.get((_account(request), object_type, request.params["id"]))
        if obj is None:
            return _missing(object_type, request.params["id"])
        return Reply(200, rules.shaped(obj, rules.version_of(request)))

    def _update(self, request: Request) -> Reply:
        object_type = TYPES[request.path.split("/")[2]][0]
        obj = self._objects.get((_account(request), object_type, request.params["id"]))
        if obj is None:
            return _missing(object_type, request.params["id"])
        changes = decode_form(request.body if isinstance(request.body, dict) else {})
        refused = rules.metadata_refusal(obj.get("metadata") or {}, changes.get("metadata"))
        if refused is not None:
            return refused
        apply_update(obj, changes)
        return Reply(200, rules.shaped(obj, rules.version_of(request)))

    def _list(self, request: Request) -> Reply:
        collection = request.path.split("/")[2]
        object_type = TYPES[collection][0]
        filters = {k: v for k, v in request.query.items() if k not in _PAGING and "[" not in k}
        scope = (_account(request), object_type)
        # Stripe lists newest first.
        found = [
            obj for (account, kind, _), obj in reversed(self._objects.items()) if (account, kind) == scope
        ]
        found = [obj for obj in found if all(obj.get(k) == v for k, v in filters.items())]
        version = rules.version_of(request)
        return Reply(
            200, _page([rules.shaped(obj, version) for obj in found], request.query, url=f"/v1/{collection}")
        )

    def _retrieve_thin_event(self, request: Request) -> Reply:
        event = self._thin_events.get((_account(request), request.params["id"]))
        if event is None:
            return stripe_error(
                404, f"No such event: '{request.params['id']}'", kind="not_found", code="not_found"
            )
        return Reply(200, copy.deepcopy(event))


def _api_key(header: str) -> str:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


def _account(request: Request) -> str | None:
    """The account the request acts on (``authenticate`` already refused malformed headers)."""
    return rules.scope_of(request)[0]


def _missing(object_type: str, object_id: str) -> Reply:
    doc = "https://stripe.com/docs/error-codes/resource-missing"
    return stripe_error(
        404, f"No such {object_type}: '{object_id}'", code="resource_missing", param="id", doc_url=doc
    )


def _replay(stored: tuple[str, bytes, Reply], request: Request, key: str) -> Reply:
    path, raw, reply = stored
    if (path, raw) != (request.path, request.raw):
        message = f"Keys for idempotent requests can only be used with the same parameters ({key!r} was not)."
        return stripe_error(400, message, kind="idempotency_error")
    headers = {name: value for name, value in reply.headers.items() if name != "Request-Id"}
    headers |= {"Idempotent-Replayed": "true", "Original-Request": reply.headers.get("Request-Id", "")}
    return Reply(reply.status, copy.deepcopy(reply.body), headers, replayed=True)


def _page(items: list[Obj], query: Params, *, url: str) -> Obj:
    """A Stripe list object: ``limit`` (default 10, at most 100) items after ``starting_after``."""
    limit_text = query.get("limit")
    limit = min(max(int(limit_text), 1), 100) if isinstance(limit_text, str) and limit_text.isdigit() else 10
    after = query.get("starting_after")
    ids = [item["id"] for item in items]
    start = ids.index(after) + 1 if isinstance(after, str) and after in ids else 0
    data = copy.deepcopy(items[start : start + limit])
    return {"object": "list", "data": data, "has_more": start + limit < len(items), "url": url}
