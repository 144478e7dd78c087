"""Stripe's event lists for the fake: ``GET /v1/events`` and ``GET /v2/core/events``.

v1 follows https://docs.stripe.com/api/events/list (``created`` filters, ``delivery_success``,
``type`` with ``*`` or ``types``, ``limit`` 1-100, ``starting_after``/``ending_before``, newest
first, a list object with ``has_more``); v2 follows https://docs.stripe.com/api/v2/core/events/list
(``created`` filters as timestamps, ``types``, ``object_id``, ``limit``, newest first, pages
followed through ``next_page_url``). Events are the fake's stored ``event`` objects and thin
events (``StripeFake.seed`` / ``seed_thin_event``). The rules are listed in
``tests/fakes/README.md`` ("Stripe event lists").
"""

from __future__ import annotations

import copy
import itertools
import threading
from datetime import datetime
from typing import Any

from tests.fakes.server import Params, Reply, Request

Obj = dict[str, Any]

_V1_PARAMS = frozenset(
    {"created", "delivery_success", "ending_before", "expand", "limit", "starting_after", "type", "types"}
)
_V2_PARAMS = frozenset({"created", "limit", "object_id", "types", "page"})
_BOUNDS = ("gt", "gte", "lt", "lte")
_MAX_TYPES = 20
_V2_DEFAULT_LIMIT = 20


def _invalid(message: str, *, param: str | None = None) -> Reply:
    error = {"message": message, "type": "invalid_request_error", **({"param": param} if param else {})}
    return Reply(400, {"error": error})


class EventLists:
    """Mixin for ``StripeFake``: the two list endpoints over its stored events.

    Needs the host fake's ``_objects`` (v1 events under ``(account, "event", id)``) and
    ``_thin_events`` (``(account, id)``), both in insertion order.
    """

    _cond: threading.Condition
    _objects: dict[tuple[str | None, str, str], Obj]
    _thin_events: dict[tuple[str | None, str], Obj]

    def _init_event_lists(self) -> None:
        self._event_pages: dict[str, tuple[Params, int]] = {}
        self._event_page_ids = itertools.count(1)

    def _list_events(self, request: Request) -> Reply:
        query = _nested(request.query)
        unknown = sorted(set(query) - _V1_PARAMS)
        if unknown:
            return _invalid(f"Received unknown parameter: {unknown[0]}", param=unknown[0])
        problem = _v1_problem(query)
        if problem is not None:
            return problem
        account = request.headers.get("stripe-account") or None
        events = [
            e for (acct, kind, _), e in reversed(self._objects.items()) if (acct, kind) == (account, "event")
        ]
        events.sort(key=lambda e: int(e.get("created") or 0), reverse=True)  # stable: insertion breaks ties
        chosen = [e for e in events if _v1_matches(e, query)]
        return Reply(200, _v1_page(chosen, query))

    def _list_thin_events(self, request: Request) -> Reply:
        query = _nested(request.query)
        if "page" in query:
            stored = self._event_pages.get(str(query["page"]))
            if stored is None:
                return _invalid("The page token is not valid.", param="page")
            query, start = stored
        else:
            unknown = sorted(set(query) - _V2_PARAMS)
            if unknown:
                return _invalid(f"Received unknown parameter: {unknown[0]}", param=unknown[0])
            start = 0
        limit = _limit(query.get("limit"), default=_V2_DEFAULT_LIMIT)
        types = _types(query.get("types"))
        if limit is None or types is None or _bounds(query.get("created"), iso=True) is None:
            return _invalid("Invalid limit, types or created filter.")
        account = request.headers.get("stripe-context") or request.headers.get("stripe-account") or None
        events = [e for (acct, _), e in reversed(self._thin_events.items()) if acct == account]
        events.sort(key=lambda e: str(e.get("created")), reverse=True)
        chosen = [e for e in events if _v2_matches(e, query, types)]
        data = copy.deepcopy(chosen[start : start + limit])
        next_page = None
        if start + limit < len(chosen):
            token = f"page_{next(self._event_page_ids)}"
            self._event_pages[token] = (query, start + limit)
            next_page = f"/v2/core/events?page={token}"
        return Reply(200, {"data": data, "next_page_url": next_page, "previous_page_url": None})


def _v1_problem(query: Obj) -> Reply | None:
    if "type" in query and "types" in query:
        return _invalid("You may only specify one of these parameters: type, types.")
    if "starting_after" in query and "ending_before" in query:
        return _invalid("You may only specify one of these parameters: ending_before, starting_after.")
    if _limit(query.get("limit"), default=10) is None:
        return _invalid("Invalid integer: limit must be between 1 and 100", param="limit")
    if "types" in query and _types(query["types"]) is None:
        return _invalid(f"types may hold at most {_MAX_TYPES} event types", param="types")
    if query.get("delivery_success") not in (None, "true", "false"):
        return _invalid("Invalid boolean: delivery_success", param="delivery_success")
    if _bounds(query.get("created"), iso=False) is None:
        return _invalid("Invalid created filter", param="created")
    return None


def _v1_matches(event: Obj, query: Obj) -> bool:
    # "If false, events which are still pending or have failed all delivery attempts to a webhook
    # endpoint will be returned": the fake's pending_webhooks > 0.
    delivered = int(event.get("pending_webhooks") or 0) == 0
    if query.get("delivery_success") is not None and delivered != (query["delivery_success"] == "true"):
        return False
    wanted = query.get("type")
    if isinstance(wanted, str) and not _type_matches(str(event.get("type")), wanted):
        return False
    types = _types(query.get("types"))
    if types and event.get("type") not in types:
        return False
    return _within(int(event.get("created") or 0), _bounds(query.get("created"), iso=False) or {})


def _v1_page(events: list[Obj], query: Obj) -> Obj:
    limit = _limit(query.get("limit"), default=10) or 10
    ids = [event["id"] for event in events]
    after, before = query.get("starting_after"), query.get("ending_before")
    if isinstance(before, str) and before in ids:
        end = ids.index(before)
        page = events[max(0, end - limit) : end]
        more = end - limit > 0
    else:
        start = ids.index(after) + 1 if isinstance(after, str) and after in ids else 0
        page = events[start : start + limit]
        more = start + limit < len(events)
    return {"object": "list", "url": "/v1/events", "has_more": more, "data": copy.deepcopy(page)}


def _v2_matches(event: Obj, query: Obj, types: list[str]) -> bool:
    if types and event.get("type") not in types:
        return False
    related = event.get("related_object")
    if "object_id" in query and not (isinstance(related, dict) and related.get("id") == query["object_id"]):
        return False
    return _within(_iso(str(event.get("created"))), _bounds(query.get("created"), iso=True) or {})


def _nested(query: Params) -> Obj:
    """``created[gte]=1`` -> ``{"created": {"gte": "1"}}``; ``types[0]=a`` or ``types[]=a`` -> a list."""
    tree: Obj = {}
    for key, value in query.items():
        name, _, rest = key.partition("[")
        if not rest:
            tree[name] = value[-1] if isinstance(value, list) and name != "types" else value
        elif rest.rstrip("]").isdigit() or rest == "]":
            values = value if isinstance(value, list) else [value]
            tree.setdefault(name, []).extend(values)
        else:
            tree.setdefault(name, {})[rest.rstrip("]")] = value[-1] if isinstance(value, list) else value
    return tree


def _bounds(created: Any, *, iso: bool) -> dict[str, float] | None:
    """The ``created`` filter as bounds in Unix seconds; ``None`` when it is not a valid filter."""
    if created is None:
        return {}
    values = created if isinstance(created, dict) else {"eq": created}
    bounds: dict[str, float] = {}
    for name, text in values.items():
        if name not in (*_BOUNDS, "eq"):
            return None
        try:
            bounds[name] = _iso(str(text)) if iso else float(int(str(text)))
        except ValueError:
            return None
    return bounds


def _within(at: float, bounds: dict[str, float]) -> bool:
    checks = {
        "gt": at > bounds.get("gt", float("-inf")),
        "gte": at >= bounds.get("gte", float("-inf")),
        "lt": at < bounds.get("lt", float("inf")),
        "lte": at <= bounds.get("lte", float("inf")),
        "eq": "eq" not in bounds or at == bounds["eq"],
    }
    return all(checks.values())


def _limit(value: Any, *, default: int) -> int | None:
    if value is None:
        return default
    text = str(value)
    return int(text) if text.isdigit() and 1 <= int(text) <= 100 else None


def _types(value: Any) -> list[str] | None:
    if value is None:
        return []
    types = value if isinstance(value, list) else [value]
    return [str(t) for t in types] if len(types) <= _MAX_TYPES else None


def _type_matches(event_type: str, wanted: str) -> bool:
    if wanted.endswith("*"):
        return event_type.startswith(wanted[:-1])
    return event_type == wanted


def _iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
