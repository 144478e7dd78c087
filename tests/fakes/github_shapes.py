"""GitHub REST JSON shapes for the fake, built from its stored records.

Field names and types follow https://docs.github.com/rest closely enough for PyGithub to parse them.
Every API ``url`` starts with ``base`` (the fake as the client addressed it, prefix included) so
PyGithub follows it back to the fake; ``html_url`` fields point at github.com and are never fetched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

Obj = dict[str, Any]
WEB = "https://github.com"


def iso(at: float) -> str:
    """GitHub's timestamp format."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _numeric_id(text: str) -> int:
    return sum(text.encode()) * 31 + len(text)


def user_obj(login: str, *, base: str = "", kind: str = "User") -> Obj:
    """A user, bot or organization summary."""
    user_id = _numeric_id(login)
    return {
        "login": login,
        "id": user_id,
        "node_id": f"U_{user_id}",
        "type": kind,
        "site_admin": False,
        "url": f"{base}/users/{login}",
        "html_url": f"{WEB}/{login}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}",
    }


def repo_obj(base: str, repo: Obj) -> Obj:
    """``GET /repos/{owner}/{repo}``."""
    full, url = repo["full_name"], f"{base}/repos/{repo['full_name']}"
    now = iso(time.time())
    return {
        "id": repo["id"],
        "node_id": f"R_{repo['id']}",
        "name": repo["name"],
        "full_name": full,
        "owner": user_obj(repo["owner"], base=base, kind="Organization"),
        "private": repo["private"],
        "visibility": "private" if repo["private"] else "public",
        "description": None,
        "fork": False,
        "archived": False,
        "disabled": False,
        "has_issues": True,
        "default_branch": repo["default_branch"],
        "url": url,
        "html_url": f"{WEB}/{full}",
        "issues_url": f"{url}/issues{{/number}}",
        "pulls_url": f"{url}/pulls{{/number}}",
        "created_at": iso(0),
        "updated_at": now,
        "pushed_at": now,
        "permissions": {"admin": False, "push": True, "pull": True},
    }


def label_obj(base: str, full: str, name: str) -> Obj:
    """A label on an issue."""
    label_id = _numeric_id(name)
    url = f"{base}/repos/{full}/labels/{name}"
    return {
        "id": label_id,
        "node_id": f"LA_{label_id}",
        "url": url,
        "name": name,
        "color": "ededed",
        "default": False,
    }


def issue_obj(base: str, issue: Obj, *, comments: int) -> Obj:
    """``GET /repos/{owner}/{repo}/issues/{number}``; pull requests carry a ``pull_request`` link."""
    full, number = issue["repo"], issue["number"]
    repo_url = f"{base}/repos/{full}"
    url, html = (
        f"{repo_url}/issues/{number}",
        f"{WEB}/{full}/{'pull' if issue['pull'] else 'issues'}/{number}",
    )
    obj = {
        "id": issue["id"],
        "node_id": f"I_{issue['id']}",
        "number": number,
        "title": issue["title"],
        "body": issue["body"],
        "state": issue["state"],
        "state_reason": None,
        "locked": False,
        "user": user_obj(issue["user"], base=base),
        "labels": [label_obj(base, full, name) for name in issue["labels"]],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": comments,
        "author_association": "CONTRIBUTOR",
        "url": url,
        "repository_url": repo_url,
        "comments_url": f"{url}/comments",
        "labels_url": f"{url}/labels{{/name}}",
        "events_url": f"{url}/events",
        "html_url": html,
        "created_at": iso(issue["created_at"]),
        "updated_at": iso(issue["created_at"]),
        "closed_at": None,
    }
    if issue["pull"] is not None:
        obj["pull_request"] = {
            "url": f"{repo_url}/pulls/{number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
        }
    return obj


def pull_obj(base: str, issue: Obj, *, repo: Obj, comments: int) -> Obj:
    """``GET /repos/{owner}/{repo}/pulls/{number}``, with additions/deletions summed over its files."""
    as_issue, pull, files = issue_obj(base, issue, comments=comments), issue["pull"], issue["pull"]["files"]
    shared = (
        "number",
        "title",
        "body",
        "state",
        "locked",
        "user",
        "labels",
        "comments",
        "author_association",
    )
    return {
        **{name: as_issue[name] for name in shared},
        "id": pull["id"],
        "node_id": f"PR_{pull['id']}",
        "url": f"{base}/repos/{issue['repo']}/pulls/{issue['number']}",
        "html_url": as_issue["html_url"],
        "diff_url": f"{as_issue['html_url']}.diff",
        "issue_url": as_issue["url"],
        "comments_url": as_issue["comments_url"],
        "head": _ref(repo, pull["head"], pull["head_sha"]),
        "base": _ref(repo, pull["base"], "0" * 40),
        "draft": pull["draft"],
        "merged": False,
        "mergeable": True,
        "mergeable_state": "clean",
        "merged_at": None,
        "closed_at": None,
        "review_comments": 0,
        "commits": 1,
        "additions": sum(f["additions"] for f in files),
        "deletions": sum(f["deletions"] for f in files),
        "changed_files": len(files),
        "created_at": as_issue["created_at"],
        "updated_at": as_issue["updated_at"],
    }


def _ref(repo: Obj, ref: str, sha: str) -> Obj:
    owner = repo["owner"]
    return {"label": f"{owner['login']}:{ref}", "ref": ref, "sha": sha, "user": owner, "repo": repo}


def file_obj(base: str, issue: Obj, file: Obj) -> Obj:
    """One entry of ``GET /repos/{owner}/{repo}/pulls/{number}/files``."""
    full, sha, name = issue["repo"], issue["pull"]["head_sha"], file["filename"]
    return {
        **file,
        "changes": file["additions"] + file["deletions"],
        "blob_url": f"{WEB}/{full}/blob/{sha}/{name}",
        "raw_url": f"{WEB}/{full}/raw/{sha}/{name}",
        "contents_url": f"{base}/repos/{full}/contents/{name}?ref={sha}",
    }


def comment_obj(base: str, comment: Obj) -> Obj:
    """An issue comment."""
    repo_url, number, comment_id = f"{base}/repos/{comment['repo']}", comment["number"], comment["id"]
    return {
        "id": comment_id,
        "node_id": f"IC_{comment_id}",
        "body": comment["body"],
        "user": user_obj(comment["user"], base=base, kind=comment["user_type"]),
        "author_association": "CONTRIBUTOR",
        "url": f"{repo_url}/issues/comments/{comment_id}",
        "issue_url": f"{repo_url}/issues/{number}",
        "html_url": f"{WEB}/{comment['repo']}/issues/{number}#issuecomment-{comment_id}",
        "created_at": iso(comment["created_at"]),
        "updated_at": iso(comment["updated_at"]),
    }


def check_run_obj(base: str, run: Obj, *, app: Obj | None) -> Obj:
    """A check run as created or last edited."""
    run_id = run["id"]
    output = {"title": None, "summary": None, "text": None, **run["output"], "annotations_count": 0}
    return {
        "id": run_id,
        "node_id": f"CR_{run_id}",
        "name": run["name"],
        "head_sha": run["head_sha"],
        "external_id": run.get("external_id"),
        "details_url": run.get("details_url"),
        "status": run["status"],
        "conclusion": run["conclusion"],
        "started_at": iso(run["started_at"]),
        "completed_at": iso(run["completed_at"]) if run["completed_at"] else None,
        "output": output,
        "url": f"{base}/repos/{run['repo']}/check-runs/{run_id}",
        "html_url": f"{WEB}/{run['repo']}/runs/{run_id}",
        "check_suite": {"id": run_id + 1},
        "app": app,
        "pull_requests": [],
    }


def app_obj(base: str, app_id: int) -> Obj:
    """``GET /app``."""
    return {
        "id": app_id,
        "slug": "fake-app",
        "node_id": f"A_{app_id}",
        "name": "Fake App",
        "owner": user_obj("fake-org", base=base, kind="Organization"),
        "description": "",
        "external_url": "https://example.com",
        "html_url": f"{WEB}/apps/fake-app",
        "created_at": iso(0),
        "updated_at": iso(0),
        "events": ["issues", "issue_comment", "pull_request"],
        "permissions": {"issues": "write", "pull_requests": "write", "checks": "write", "metadata": "read"},
    }


def rate_limit_obj() -> Obj:
    """``GET /rate_limit``: plenty left everywhere."""
    reset = int(time.time()) + 3600
    core = {"limit": 5000, "remaining": 4999, "reset": reset, "used": 1, "resource": "core"}
    search = {"limit": 30, "remaining": 30, "reset": reset, "used": 0, "resource": "search"}
    return {
        "resources": {"core": core, "search": search, "graphql": core | {"resource": "graphql"}},
        "rate": core,
    }


def page(items: list[Any], *, query: Mapping[str, str | list[str]], url: str) -> tuple[list[Any], str]:
    """The page of ``items`` that ``per_page`` and ``page`` ask for, and GitHub's ``Link`` header value
    (next, last, first, prev; empty when everything fits on one page)."""
    per_page = min(max(_int(query.get("per_page"), 30), 1), 100)
    number = max(_int(query.get("page"), 1), 1)
    last = max(math.ceil(len(items) / per_page), 1)
    rels: dict[str, int] = {}
    if number < last:
        rels |= {"next": number + 1, "last": last}
    if number > 1:
        rels |= {"first": 1, "prev": number - 1}
    others = {k: v for k, v in query.items() if k not in ("page", "per_page")}
    queries = {
        rel: urlencode(others | {"per_page": per_page, "page": n}, doseq=True) for rel, n in rels.items()
    }
    link = ", ".join(f'<{url}?{queries[rel]}>; rel="{rel}"' for rel in rels)
    return items[(number - 1) * per_page : number * per_page], link


def _int(value: str | list[str] | None, default: int) -> int:
    text = value[-1] if isinstance(value, list) else value
    return int(text) if text and text.isdigit() else default
