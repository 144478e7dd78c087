"""A fake GitHub REST API: the repository, issue, pull-request and check-run endpoints a bot uses.

Bodies come from ``github_shapes`` and point back at the fake, so PyGithub can follow them.
``prefix="/api/v3"`` serves the same API the way GitHub Enterprise Server does. GitHub App JWTs are
checked against the app's public key (RS256; ``exp`` at most 10 minutes ahead) and exchanged for
installation tokens that expire (``token_lifetime``, an hour by default; ``expire_tokens``), as in
https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app. Comment bodies
and check runs are checked as GitHub checks them (``github_rules``: byte limits, status and
conclusion enums).
"""

from __future__ import annotations

import base64
import binascii
import copy
import http
import itertools
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes import github_rules as rules
from tests.fakes import github_shapes as shapes
from tests.fakes.github_apps import ManifestApps
from tests.fakes.github_hooks import HookDeliveries
from tests.fakes.server import FakeServer, Reply, Request, Route, route

DEFAULT_TOKEN = "ghp_fakepersonaltoken"
TOKEN_LIFETIME = 3600
DEFAULT_PERMISSIONS = {"issues": "write", "pull_requests": "write", "checks": "write", "metadata": "read"}
_BAD_JWT = "A JSON web token could not be decoded"
ROLES = ("admin", "maintain", "write", "triage", "read")
# The permission endpoint's legacy names: maintain is reported as write, triage as read.
_LEGACY = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}
# "The time must be no more than 10 minutes into the future" (GitHub's JWT page).
_JWT_MAX_AHEAD = 600

Obj = dict[str, Any]


def _error(status: int, message: str | None = None) -> Reply:
    body = {
        "message": message or http.HTTPStatus(status).phrase,
        "documentation_url": "https://docs.github.com/rest",
    }
    return Reply(status, body | {"status": str(status)})


def load_public_key(key: str | bytes | rsa.RSAPublicKey) -> rsa.RSAPublicKey:
    """An RSA public key from PEM text or bytes (or the key itself)."""
    if isinstance(key, rsa.RSAPublicKey):
        return key
    loaded = serialization.load_pem_public_key(key.encode() if isinstance(key, str) else key)
    if not isinstance(loaded, rsa.RSAPublicKey):
        raise TypeError("a GitHub App key is an RSA key")
    return loaded


def verify_rs256(token: str, key: rsa.RSAPublicKey) -> Obj:
    """The claims of an RS256 JWT signed by ``key``; ``ValueError`` if it is not one."""
    try:
        head, payload, signature = token.split(".")
        if json.loads(_unb64(head)).get("alg") != "RS256":
            raise ValueError("not RS256")
        key.verify(_unb64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        claims = json.loads(_unb64(payload))
    except (ValueError, InvalidSignature, binascii.Error, AttributeError) as exc:
        raise ValueError(_BAD_JWT) from exc
    if not isinstance(claims, dict):
        raise ValueError(_BAD_JWT)
    return claims


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class GitHubFake(HookDeliveries, FakeServer):
    """GitHub REST API at ``base_url``, for ``github.Github(base_url=...)`` and ``GithubIntegration``.

    Accepts ``token X`` / ``Bearer X`` with a configured token or an installation token it issued.
    Check runs, as on GitHub, need an installation token (other tokens get 403). Webhook delivery
    logs and redelivery are ``github_hooks.HookDeliveries``.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        app_id: int | None = None,
        app_public_key: str | bytes | rsa.RSAPublicKey | None = None,
        prefix: str = "",
        token_lifetime: float = TOKEN_LIFETIME,
    ) -> None:
        self.tokens = tuple(tokens)
        self.app_id = app_id
        self.token_lifetime = token_lifetime
        self._app_key = None if app_public_key is None else load_public_key(app_public_key)
        self._ids = itertools.count(1001)
        self._repos: dict[str, Obj] = {}
        self._issues: dict[tuple[str, int], Obj] = {}
        self._comments: dict[int, Obj] = {}
        self._check_runs: dict[int, Obj] = {}
        self._issued: dict[str, Obj] = {}
        self._init_hooks()
        self.clock = time.time  # what the manifest flow's one-hour limit is measured with
        self.manifests = ManifestApps(self._ids, lambda: self.clock())
        self._roles: dict[tuple[str, str], str] = {}
        super().__init__(prefix=prefix)

    @property
    def token(self) -> str:
        """The first accepted personal token."""
        return self.tokens[0]

    def routes(self) -> Iterable[Route]:
        """Repository, issue, comment, label, pull, check-run, app and rate-limit endpoints."""
        repo, issue = "/repos/{owner}/{repo}", "/repos/{owner}/{repo}/issues/{number}"
        return [
            route("GET", repo, self._get_repo),
            route("GET", issue, self._get_issue),
            route("GET", f"{issue}/comments", self._list_comments),
            route("POST", f"{issue}/comments", self._create_comment),
            route("POST", f"{issue}/labels", self._add_labels),
            route("PATCH", f"{repo}/issues/comments/{{id}}", self._edit_comment),
            route("GET", f"{repo}/pulls/{{number}}", self._get_pull),
            route("GET", f"{repo}/pulls/{{number}}/files", self._list_files),
            route("POST", f"{repo}/check-runs", self._create_check_run),
            route("PATCH", f"{repo}/check-runs/{{id}}", self._edit_check_run),
            route("GET", f"{repo}/collaborators/{{username}}/permission", self._get_permission),
            route("GET", "/rate_limit", lambda request: Reply(200, shapes.rate_limit_obj())),
            route("GET", "/app", self._get_app, public=True),
            route("POST", "/app/installations/{id}/access_tokens", self._create_token, public=True),
            *self.hook_routes(),
            # The App manifest flow: github.com's form (the browser's, at the root), then the API's.
            *(
                route("POST", page, self.manifests.register, public=True, rooted=True)
                for page in ("/settings/apps/new", "/organizations/{org}/settings/apps/new")
            ),
            route("POST", "/app-manifests/{code}/conversions", self._convert_manifest, public=True),
        ]

    # -- seeding ---------------------------------------------------------------------------------

    def seed_repo(self, full_name: str, *, private: bool = False, default_branch: str = "main") -> None:
        """Make ``owner/name`` exist (seeding an issue or pull request does this too)."""
        with self._cond:
            self._repo(full_name).update(private=private, default_branch=default_branch)

    def seed_issue(self, full_name: str, number: int, *, title: str = "An issue", **fields: Any) -> None:
        """Make issue ``number`` exist; ``fields``: ``body``, ``user`` (login), ``state``, ``labels``."""
        with self._cond:
            self._repo(full_name)
            defaults = {"body": "", "user": "octocat", "state": "open", "labels": []}
            record = {"id": next(self._ids), "repo": full_name, "number": number, "title": title}
            extra = {"created_at": time.time(), "pull": None}
            self._issues[(full_name, number)] = record | defaults | fields | extra
            self._issues[(full_name, number)]["labels"] = list(self._issues[(full_name, number)]["labels"])

    def seed_pull(
        self, full_name: str, number: int, *, files: Iterable[Mapping[str, Any]] = (), **fields: Any
    ) -> None:
        """Make pull request ``number`` exist, touching ``files`` (dicts with ``filename`` and optionally
        ``additions``, ``deletions``, ``status``, ``patch``).

        ``fields``: ``title``, ``body``, ``user``, ``head``, ``base``, ``head_sha``, ``draft``.
        """
        issue_fields = {k: fields.pop(k) for k in ("title", "body", "user") if k in fields}
        self.seed_issue(full_name, number, **issue_fields)
        with self._cond:
            pull = {"id": next(self._ids), "head": "feature", "base": "main", "draft": False}
            pull |= {"head_sha": secrets.token_hex(20)} | fields | {"files": [_file(f) for f in files]}
            self._issues[(full_name, number)]["pull"] = pull

    def seed_collaborator(self, full_name: str, login: str, role: str) -> None:
        """Give ``login`` the repository role ``role`` (``ROLES``)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        with self._cond:
            self._repo(full_name)
            self._roles[(full_name, login.lower())] = role

    def seed_comment(self, full_name: str, number: int, body: str, *, user: str = "octocat") -> int:
        """An earlier comment on issue ``number``; returns its id."""
        with self._cond:
            return self._add_comment(full_name, number, body, user=user, user_type="User")

    # -- inspection ------------------------------------------------------------------------------

    def comments(self, full_name: str, number: int) -> list[Obj]:
        """Comments on an issue or pull request, oldest first: ``id``, ``body``, ``user`` (login), ..."""
        with self._cond:
            return copy.deepcopy(
                [c for c in self._comments.values() if (c["repo"], c["number"]) == (full_name, number)]
            )

    def check_runs(self, full_name: str | None = None) -> list[Obj]:
        """Check runs as created and last edited, oldest first."""
        with self._cond:
            return copy.deepcopy([r for r in self._check_runs.values() if full_name in (None, r["repo"])])

    def labels(self, full_name: str, number: int) -> list[str]:
        """Label names on an issue or pull request."""
        with self._cond:
            return list(self._issues[(full_name, number)]["labels"])

    @property
    def issued_tokens(self) -> list[Obj]:
        """Installation tokens handed out: ``token``, ``installation_id``, ``expires_at`` (epoch seconds)."""
        with self._cond:
            return [{"token": token, **fields} for token, fields in self._issued.items()]

    def expire_tokens(self) -> None:
        """Make every installation token handed out so far expired (GitHub then answers 401)."""
        with self._cond:
            for issued in self._issued.values():
                issued["expires_at"] = min(issued["expires_at"], time.time() - 1)

    def reset_state(self) -> None:
        """Forget repositories, issues, pulls, comments, check runs, issued tokens, manifest Apps."""
        for store in (self._repos, self._issues, self._comments, self._check_runs, self._issued):
            store.clear()
        self.reset_hooks()
        self.manifests.reset()

    # -- FakeServer hooks ------------------------------------------------------------------------

    def decorate(self, reply: Reply) -> None:
        """GitHub's rate-limit headers, on every response."""
        limits = {
            "Limit": "5000",
            "Remaining": "4999",
            "Reset": str(int(time.time()) + 3600),
            "Resource": "core",
        }
        for name, value in limits.items():
            reply.headers.setdefault(f"X-RateLimit-{name}", value)

    def authenticate(self, request: Request) -> Reply | None:
        """``token X`` or ``Bearer X`` with a configured token or a live installation token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not token:
            return _error(401, "Requires authentication")
        if scheme.lower() in ("token", "bearer") and (token in self.tokens or self._installation(token)):
            return None
        return _error(401, "Bad credentials")

    def not_found(self, request: Request) -> Reply:
        """GitHub's 404."""
        return _error(404)

    def fault_body(self, status: int) -> Any:
        """GitHub's error body: a plain phrase, never a rate-limit message PyGithub would wait on."""
        return _error(status, "Bad credentials" if status == 401 else None).body

    # -- app authentication ----------------------------------------------------------------------

    def _installation(self, token: str) -> int | None:
        issued = self._issued.get(token)
        if issued is None or issued["expires_at"] <= time.time():
            return None
        return int(issued["installation_id"])

    def _check_jwt(self, request: Request) -> Reply | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if self._app_key is None or scheme.lower() != "bearer":
            return _error(401, _BAD_JWT)
        try:
            claims = verify_rs256(token, self._app_key)
        except ValueError:
            return _error(401, _BAD_JWT)
        now, exp, iat = time.time(), claims.get("exp"), claims.get("iat")
        if str(claims.get("iss")) != str(self.app_id):
            return _error(401, "'Issuer' claim ('iss') must be the GitHub App's id")
        if not isinstance(exp, int) or not now < exp <= now + _JWT_MAX_AHEAD:
            return _error(401, "'Expiration time' claim ('exp') is too far in the future or in the past")
        if not isinstance(iat, int) or iat > now + 60:
            return _error(401, "'Issued at' claim ('iat') must be an Integer representing the time issued")
        return None

    def _convert_manifest(self, request: Request) -> Reply:
        """The manifest code's App, which from then on authenticates here with its key (JWTs)."""
        reply, app = self.manifests.convert(request)
        if app is not None:
            self.app_id, self._app_key = app["id"], app["public_key"]
        return reply

    def _get_app(self, request: Request) -> Reply:
        return self._check_jwt(request) or Reply(200, shapes.app_obj(request.base_url, self.app_id or 0))

    def _create_token(self, request: Request) -> Reply:
        denied = self._check_jwt(request)
        installation_id = _number(request, "id")
        if denied is not None or installation_id is None:
            return denied or _error(404)
        asked = request.body.get("permissions") if isinstance(request.body, dict) else None
        token, expires_at = f"ghs_{secrets.token_hex(18)}", time.time() + self.token_lifetime
        self._issued[token] = {"installation_id": installation_id, "expires_at": expires_at}
        body = {
            "token": token,
            "expires_at": shapes.iso(expires_at),
            "permissions": asked or DEFAULT_PERMISSIONS,
        }
        return Reply(201, body | {"repository_selection": "all"})

    # -- repositories, issues and comments -------------------------------------------------------

    def _get_repo(self, request: Request) -> Reply:
        repo = self._repos.get(_full_name(request))
        return _error(404) if repo is None else Reply(200, shapes.repo_obj(request.base_url, repo))

    def _get_issue(self, request: Request) -> Reply:
        issue = self._issue(request)
        if issue is None:
            return _error(404)
        return Reply(200, shapes.issue_obj(request.base_url, issue, comments=self._count(issue)))

    def _list_comments(self, request: Request) -> Reply:
        issue = self._issue(request)
        if issue is None:
            return _error(404)
        found = [c for c in self._comments.values() if c["issue_id"] == issue["id"]]
        return _paginate(request, [shapes.comment_obj(request.base_url, c) for c in found])

    def _create_comment(self, request: Request) -> Reply:
        issue, body = self._issue(request), _field(request, "body")
        if issue is None:
            return _error(404)
        refused = rules.comment_refusal(body)
        if refused is not None:
            return refused
        user, user_type = self._actor(request)
        comment_id = self._add_comment(issue["repo"], issue["number"], body, user=user, user_type=user_type)
        return Reply(201, shapes.comment_obj(request.base_url, self._comments[comment_id]))

    def _edit_comment(self, request: Request) -> Reply:
        comment, body = self._comments.get(_number(request, "id") or 0), _field(request, "body")
        if comment is None or comment["repo"] != _full_name(request):
            return _error(404)
        refused = rules.comment_refusal(body)
        if refused is not None:
            return refused
        comment.update(body=body, updated_at=time.time())
        return Reply(200, shapes.comment_obj(request.base_url, comment))

    def _add_labels(self, request: Request) -> Reply:
        issue = self._issue(request)
        names = request.body if isinstance(request.body, list) else _field(request, "labels")
        if issue is None:
            return _error(404)
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            return _error(422, "Validation Failed")
        issue["labels"] += [name for name in names if name not in issue["labels"]]
        labels = [shapes.label_obj(request.base_url, issue["repo"], name) for name in issue["labels"]]
        return Reply(200, labels)

    def _get_permission(self, request: Request) -> Reply:
        """A collaborator's permission: the legacy name and the role; people with no role have
        ``read`` on a public repository and ``none`` on a private one."""
        full_name, login = _full_name(request), request.params["username"]
        repo = self._repos.get(full_name)
        if repo is None:
            return _error(404)
        role = self._roles.get((full_name, login.lower())) or ("none" if repo["private"] else "read")
        body = {"permission": _LEGACY.get(role, "none"), "role_name": role}
        return Reply(200, body | {"user": shapes.user_obj(login, base=request.base_url)})

    # -- pull requests and check runs ------------------------------------------------------------

    def _get_pull(self, request: Request) -> Reply:
        issue = self._issue(request)
        if issue is None or issue["pull"] is None:
            return _error(404)
        repo = shapes.repo_obj(request.base_url, self._repos[issue["repo"]])
        return Reply(200, shapes.pull_obj(request.base_url, issue, repo=repo, comments=self._count(issue)))

    def _list_files(self, request: Request) -> Reply:
        issue = self._issue(request)
        if issue is None or issue["pull"] is None:
            return _error(404)
        return _paginate(
            request, [shapes.file_obj(request.base_url, issue, f) for f in issue["pull"]["files"]]
        )

    def _create_check_run(self, request: Request) -> Reply:
        full_name = _full_name(request)
        if full_name not in self._repos:
            return _error(404)
        if self._installation(_token(request)) is None:
            return _error(403, "You must authenticate via a GitHub App.")
        refused = rules.check_run_refusal(
            request.body if isinstance(request.body, dict) else {}, creating=True
        )
        if refused is not None:
            return refused
        run_id = next(self._ids)
        run = {"id": run_id, "repo": full_name, "status": "queued", "conclusion": None, "output": {}}
        self._check_runs[run_id] = run | {"started_at": time.time(), "completed_at": None}
        _apply_check_run(self._check_runs[run_id], request.body)
        return Reply(201, self._check_run_obj(request.base_url, self._check_runs[run_id]))

    def _edit_check_run(self, request: Request) -> Reply:
        run = self._check_runs.get(_number(request, "id") or 0)
        if run is None or run["repo"] != _full_name(request):
            return _error(404)
        body = request.body if isinstance(request.body, dict) else {}
        refused = rules.check_run_refusal(body, creating=False)
        if refused is not None:
            return refused
        _apply_check_run(run, body)
        return Reply(200, self._check_run_obj(request.base_url, run))

    def _check_run_obj(self, base: str, run: Obj) -> Obj:
        app = shapes.app_obj(base, self.app_id) if self.app_id else None
        return shapes.check_run_obj(base, run, app=app)

    # -- state helpers ---------------------------------------------------------------------------

    def _repo(self, full_name: str) -> Obj:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"not an owner/name repository: {full_name!r}")
        record = {"id": next(self._ids), "full_name": full_name, "owner": owner, "name": name}
        return self._repos.setdefault(full_name, record | {"private": False, "default_branch": "main"})

    def _issue(self, request: Request) -> Obj | None:
        number = _number(request, "number")
        return None if number is None else self._issues.get((_full_name(request), number))

    def _count(self, issue: Obj) -> int:
        return sum(1 for comment in self._comments.values() if comment["issue_id"] == issue["id"])

    def _add_comment(self, full_name: str, number: int, body: str, *, user: str, user_type: str) -> int:
        comment_id, now = next(self._ids), time.time()
        issue_id = self._issues[(full_name, number)]["id"]
        where = {"id": comment_id, "repo": full_name, "number": number, "issue_id": issue_id}
        what = {"body": body, "user": user, "user_type": user_type, "created_at": now, "updated_at": now}
        self._comments[comment_id] = where | what
        return comment_id

    def _actor(self, request: Request) -> tuple[str, str]:
        """Who a write is attributed to: the app's bot with an installation token, else a user."""
        if self._installation(_token(request)) is not None:
            return "fake-app[bot]", "Bot"
        return "fake-user", "User"


def _full_name(request: Request) -> str:
    return f"{request.params['owner']}/{request.params['repo']}"


def _number(request: Request, name: str) -> int | None:
    value = request.params.get(name, "")
    return int(value) if value.isdigit() else None


def _token(request: Request) -> str:
    return request.headers.get("authorization", "").partition(" ")[2]


def _field(request: Request, name: str) -> Any:
    return request.body.get(name) if isinstance(request.body, dict) else None


def _file(spec: Mapping[str, Any]) -> Obj:
    return {
        "sha": secrets.token_hex(20),
        "status": "modified",
        "additions": 0,
        "deletions": 0,
        "patch": "",
    } | dict(spec)


def _apply_check_run(run: Obj, body: Mapping[str, Any]) -> None:
    """Apply a create/update body: named fields, output text, and completion when a conclusion is set."""
    run.update(
        {
            k: body[k]
            for k in ("name", "head_sha", "status", "conclusion", "details_url", "external_id")
            if k in body
        }
    )
    output = body.get("output")
    if isinstance(output, dict):
        run["output"] = run["output"] | {k: output[k] for k in ("title", "summary", "text") if k in output}
    if body.get("conclusion") or body.get("status") == "completed":
        run.update(status="completed", completed_at=run["completed_at"] or time.time())


def _paginate(request: Request, items: list[Any]) -> Reply:
    chunk, link = shapes.page(items, query=request.query, url=f"{request.base_url}{request.path}")
    return Reply(200, chunk, {"Link": link} if link else {})
