"""What GitHub's REST API refuses with 422, enforced by ``GitHubFake`` (sources in README.md).

- comment bodies: GitHub answers "body is too long (maximum is 65536 characters)"; measured, it
  takes 65,536 characters and 262,144 UTF-8 bytes. The fake refuses past either.
- check-run ``output``: ``title`` and ``summary`` required; ``summary`` and ``text`` at most
  65,535 **bytes** ("summary exceeds a maximum bytesize of 65535"); at most 50 annotations a request.
- check-run ``status``/``conclusion``: an app may set ``queued``, ``in_progress`` or ``completed``
  (``waiting``, ``requested``, ``pending`` are GitHub Actions' own); ``completed`` (or a
  ``completed_at``) needs a ``conclusion``, and nobody but GitHub sets ``stale``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.fakes.server import Reply

COMMENT_CHARACTERS = 65_536
COMMENT_BYTES = 262_144
OUTPUT_BYTES = 65_535
MAX_ANNOTATIONS = 50
APP_STATUSES = frozenset({"queued", "in_progress", "completed"})
CONCLUSIONS = frozenset(
    {"action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"}
)
_CHECK_RUNS_DOCS = "https://docs.github.com/rest/checks/runs#create-a-check-run"


def validation_failed(resource: str, field: str, code: str, message: str, docs: str) -> Reply:
    """GitHub's 422 ``Validation Failed`` body."""
    error = {"resource": resource, "code": code, "field": field, "message": message}
    body = {"message": "Validation Failed", "errors": [error], "documentation_url": docs, "status": "422"}
    return Reply(422, body)


def comment_refusal(body: Any, *, resource: str = "IssueComment") -> Reply | None:
    """The 422 for a comment body GitHub would refuse, or ``None``."""
    docs = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
    if not isinstance(body, str) or not body:
        return validation_failed(resource, "body", "missing_field", "body is missing", docs)
    if len(body) > COMMENT_CHARACTERS or len(body.encode()) > COMMENT_BYTES:
        message = f"body is too long (maximum is {COMMENT_CHARACTERS} characters)"
        return validation_failed(resource, "body", "custom", message, docs)
    return None


def check_run_refusal(body: Mapping[str, Any], *, creating: bool) -> Reply | None:
    """The 422 for a check-run create or update body GitHub would refuse, or ``None``."""
    if creating and (not body.get("name") or not body.get("head_sha")):
        return Reply(422, {"message": 'Invalid request.\n\n"name" and "head_sha" weren\'t supplied.'})
    status, conclusion = body.get("status"), body.get("conclusion")
    if status is not None and status not in APP_STATUSES:
        return _invalid(f"{status} is not a member of {sorted(APP_STATUSES)}.")
    if conclusion is not None and conclusion not in CONCLUSIONS:
        return _invalid(f"{conclusion} is not a member of {sorted(CONCLUSIONS)}.")
    if conclusion is None and (status == "completed" or body.get("completed_at")):
        return _invalid('"conclusion" wasn\'t supplied.')
    output = body.get("output")
    return _output_refusal(output) if output is not None else None


def _output_refusal(output: Any) -> Reply | None:
    if not isinstance(output, dict) or not output.get("title") or not output.get("summary"):
        return _invalid('"title" and "summary" weren\'t supplied in "output".')
    for field in ("summary", "text"):
        value = output.get(field)
        if isinstance(value, str) and len(value.encode()) > OUTPUT_BYTES:
            message = f"{field} exceeds a maximum bytesize of {OUTPUT_BYTES}"
            return validation_failed("CheckRun", field, "custom", message, _CHECK_RUNS_DOCS)
    annotations = output.get("annotations")
    if isinstance(annotations, list) and len(annotations) > MAX_ANNOTATIONS:
        return _invalid(f"Only {MAX_ANNOTATIONS} annotations are allowed per request.")
    return None


def _invalid(detail: str) -> Reply:
    return Reply(422, {"message": f"Invalid request.\n\n{detail}", "documentation_url": _CHECK_RUNS_DOCS})
