"""What Stripe's API refuses, and how it shapes objects by API version, enforced by ``StripeFake``
(sources in README.md).

- ``Stripe-Version``: ``YYYY-MM-DD`` before 2024-09-30, ``YYYY-MM-DD.<major>`` since (acacia,
  basil, clover, dahlia, endive, each from its first date); anything else, or a date past the
  newest version, is refused. Without the header the account's default version applies.
- ``shaped``: objects are stored as the newest versions shape them and answered in the
  request's version. From 2025-03-31.basil a subscription has no ``current_period_*`` (they are on
  its items), an invoice no ``subscription``/``subscription_details``/``payment_intent``/``charge``
  (it has ``parent.subscription_details``), a charge or payment intent no ``invoice``; before
  basil those fields are there, derived from the new ones.
- metadata: at most 50 keys, keys at most 40 characters and without ``[`` ``]``, values at most 500.
- accounts: ``Stripe-Account`` takes one account id; ``Stripe-Context`` (which supersedes it) may
  be a ``/``-separated path. v2 endpoints read only ``Stripe-Context``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from tests.fakes.server import Reply, Request

ACCOUNT_DEFAULT_VERSION = "2025-01-27.acacia"
NEWEST_VERSION = "2026-10-28.endive"
BASIL = "2025-03-31"
# Each named major from its first version (https://docs.stripe.com/api-versions, changelog).
MAJORS = (("acacia", "2024-09-30"), ("basil", "2025-03-31"), ("clover", "2025-09-30"),
          ("dahlia", "2026-03-25"), ("endive", "2026-09-30"))  # fmt: skip
MAX_KEYS, MAX_KEY, MAX_VALUE = 50, 40, 500
_VERSION = re.compile(r"(\d{4}-\d{2}-\d{2})(?:\.([a-z]+))?")
_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{1,64}")
_CONTEXT = re.compile(r"[A-Za-z0-9_]{1,64}(?:/[A-Za-z0-9_]{1,64}){0,3}")
_INVOICE_LEGACY = ("subscription", "subscription_details", "payment_intent", "charge", "quote")


def error(status: int, message: str, *, kind: str = "invalid_request_error", **fields: Any) -> Reply:
    """A Stripe error answer."""
    return Reply(status, {"error": {"message": message, "type": kind, **fields}})


def version_of(request: Request) -> str:
    """The API version a request is answered in: its ``Stripe-Version``, else the account's."""
    return request.headers.get("stripe-version") or ACCOUNT_DEFAULT_VERSION


def version_refusal(request: Request) -> Reply | None:
    """Stripe's 400 for a ``Stripe-Version`` that is not a version, or ``None``."""
    version = request.headers.get("stripe-version")
    if version is None or is_known_version(version, preview=request.path.startswith("/v2/")):
        return None
    return error(400, f"Invalid Stripe API version: {version}", code="invalid_api_version")


def is_known_version(version: str, *, preview: bool = False) -> bool:
    """A well-formed version that exists: the right major for its date, not past the newest."""
    matched = _VERSION.fullmatch(version)
    if matched is None:
        return False
    date, name = matched.groups()
    if name == "preview":
        return preview
    if date > NEWEST_VERSION.split(".")[0]:
        return False
    majors = [major for major, start in MAJORS if start <= date]
    return name == majors[-1] if majors else name is None


def shaped(obj: Mapping[str, Any], version: str) -> dict[str, Any]:
    """``obj`` (stored in the newest shape) as the API ``version`` shapes it."""
    shaped = copy.deepcopy(dict(obj))
    basil = version.split(".")[0] >= BASIL
    kind = shaped.get("object")
    if kind == "subscription":
        _subscription(shaped, basil=basil)
    elif kind == "invoice":
        _invoice(shaped, basil=basil)
    elif kind in ("charge", "payment_intent") and basil:
        shaped.pop("invoice", None)
    return shaped


def _subscription(sub: dict[str, Any], *, basil: bool) -> None:
    if basil:
        sub.pop("current_period_start", None)
        sub.pop("current_period_end", None)
        return
    items = [item for item in (sub.get("items") or {}).get("data") or [] if isinstance(item, dict)]
    starts = [item["current_period_start"] for item in items if "current_period_start" in item]
    ends = [item["current_period_end"] for item in items if "current_period_end" in item]
    sub.setdefault("current_period_start", min(starts) if starts else None)
    sub.setdefault("current_period_end", max(ends) if ends else None)


def _invoice(invoice: dict[str, Any], *, basil: bool) -> None:
    if basil:
        for name in _INVOICE_LEGACY:
            invoice.pop(name, None)
        return
    details = (invoice.pop("parent", None) or {}).get("subscription_details") or {}
    invoice.setdefault("subscription", details.get("subscription"))


def metadata_refusal(before: Mapping[str, Any], changes: Any) -> Reply | None:
    """Stripe's 400 for metadata past its limits (counted after the update), or ``None``."""
    if not isinstance(changes, dict):
        return None
    for key, value in changes.items():
        if len(key) > MAX_KEY or "[" in key or "]" in key:
            return error(
                400, f"Invalid key: {key} must be a string under {MAX_KEY} characters", param="metadata"
            )
        if isinstance(value, str) and len(value) > MAX_VALUE:
            message = f"Invalid val: {value[:40]}... must be a string under {MAX_VALUE} characters"
            return error(400, message, param="metadata")
    after = {**before, **changes}
    count = sum(1 for value in after.values() if value != "")
    if count > MAX_KEYS:
        message = (
            f"Metadata can have up to {MAX_KEYS} keys, but you've set {count}. "
            "Email us at support+metadata@stripe.com for more information."
        )
        return error(400, message, param="metadata")
    return None


def scope_of(request: Request) -> tuple[str | None, Reply | None]:
    """The account a request acts on (``Stripe-Context`` first; on v2 only it), or the refusal."""
    context = request.headers.get("stripe-context") or None
    account = request.headers.get("stripe-account") or None
    if context is not None and not _CONTEXT.fullmatch(context):
        return None, error(400, f"Invalid Stripe-Context header: {context!r}", param="Stripe-Context")
    if request.path.startswith("/v2/"):
        return context, None
    if account is not None and not _ACCOUNT.fullmatch(account):
        message = f"Invalid Stripe-Account header: {account!r} is not an account id (acct_...)"
        return None, error(400, message, param="Stripe-Account")
    return context or account, None
