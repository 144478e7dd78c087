"""The console's pages, rendered on the server; every value is escaped, the script only fills in.

The script (``assets/app.js``) reads what it needs from ``data-`` attributes and the runs API;
it writes with ``textContent`` only, never HTML, so a delivery's text cannot become markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

__all__ = ["overview", "run", "sign_in"]

_RUN_COLUMNS = (("run_id", "Run"), ("platform", "Platform"), ("event", "Event"), ("status", "Status"))
_RATINGS_SHOWN = {"good": "👍 good", "bad": "👎 bad"}
_DELIVERY_COLUMNS = (
    ("at", "At"),
    ("platform", "Platform"),
    ("event", "Event"),
    ("outcome", "Outcome"),
    ("status", "Status"),
    ("reason", "Reason"),
)


def sign_in(*, error: str | None = None) -> str:
    """The sign-in form: one token field, posted to ``/console/login``."""
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = f"""<main class="narrow">
<h1>Gateway console</h1>
<p>Sign in with a value of <code>GATEWAY_API_TOKEN</code> (<code>gateway dev</code> prints one).</p>
{problem}
<form method="post" action="/console/login">
<label>Token <input type="password" name="token" id="token" autocomplete="current-password" required></label>
<button type="submit" id="sign-in">Sign in</button>
</form>
</main>"""
    return _document("Sign in", body)


def overview(runs: Iterable[Mapping[str, Any]], deliveries: Iterable[Mapping[str, Any]]) -> str:
    """Runs and deliveries, newest first; the script refreshes both every two seconds."""
    body = f"""<header><h1>Gateway console</h1>{_logout()}</header>
<main data-page="overview">
<section><h2>Runs</h2>{_table("runs", _RUN_COLUMNS, runs, link="run_id")}</section>
<section><h2>Deliveries</h2>{_table("deliveries", _DELIVERY_COLUMNS, deliveries)}</section>
</main>"""
    return _document("Console", body)


def run(record: Mapping[str, Any]) -> str:
    """One run: its record, the live events, the reply as the platform shows it, Cancel and Retry."""
    run_id = str(record["run_id"])
    facts = "".join(
        f'<dt>{escape(label)}</dt><dd data-field="{name}">{escape(str(record.get(name) or "–"))}</dd>'
        for name, label in (
            ("platform", "Platform"),
            ("event", "Event"),
            ("status", "Status"),
            ("attempts", "Attempts"),
            ("created_at", "Queued"),
            ("started_at", "Started"),
            ("ended_at", "Ended"),
            ("error", "Error"),
        )
    )
    title = f'<h1><a href="/console">Console</a> › run <code>{escape(run_id)}</code></h1>'
    reply = escape(str(record.get("reply") or ""))
    body = f"""<header>{title}{_logout()}</header>
<main data-page="run" data-run="{escape(run_id, quote=True)}">
<dl class="facts">{facts}</dl>
<p class="actions">
<button type="button" id="cancel" hidden>Cancel</button>
<button type="button" id="retry" hidden>Retry</button>
<span id="action-result" role="status"></span>
</p>
<section><h2>Progress</h2><ol id="progress"></ol></section>
<section><h2>Reply</h2><p id="reply-note" class="note"></p><pre id="reply">{reply}</pre></section>
<section><h2>Feedback</h2>{_feedback(record.get("feedback") or [])}</section>
</main>"""
    return _document(f"Run {run_id}", body)


def _feedback(given: Iterable[Mapping[str, Any]]) -> str:
    """Who rated the answer which way, and when (one line each); a note when nobody has."""
    items = "".join(
        f'<li data-rating="{escape(str(row.get("rating")), quote=True)}">'
        f"{escape(_RATINGS_SHOWN.get(str(row.get('rating')), str(row.get('rating'))))} · "
        f"{escape(str(row.get('user') or '–'))} · {escape(str(row.get('at') or ''))}</li>"
        for row in given
    )
    return (
        f'<ul id="feedback">{items}</ul>' if items else '<p id="feedback" class="note">No feedback yet.</p>'
    )


def _table(
    name: str,
    columns: tuple[tuple[str, str], ...],
    rows: Iterable[Mapping[str, Any]],
    *,
    link: str | None = None,
) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in columns)
    keys = ",".join(key for key, _ in columns)
    body = "".join(_row(columns, row, link=link) for row in rows)
    return (
        f'<table id="{name}" data-columns="{keys}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _row(columns: tuple[tuple[str, str], ...], row: Mapping[str, Any], *, link: str | None) -> str:
    cells = []
    for key, _ in columns:
        value = escape(str(row.get(key) if row.get(key) is not None else ""))
        if key == link and value:
            value = f'<a href="/console/runs/{value}">{value}</a>'
        cells.append(f"<td>{value}</td>")
    return f"<tr>{''.join(cells)}</tr>"


def _logout() -> str:
    return '<form method="post" action="/console/logout"><button type="submit">Sign out</button></form>'


def _document(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · gateway</title><link rel="stylesheet" href="/console/app.css"></head>
<body>{body}<script src="/console/app.js"></script></body></html>
"""
