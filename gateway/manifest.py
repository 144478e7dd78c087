"""``gateway manifest <platform>``: an app registration that points the platform at this gateway.

Each platform with a registration to offer (Slack's app manifest, GitHub's App manifest) has a
``manifest`` module of its own (``gateway.types.Manifest``); this command checks the options,
prints the manifest to stdout and how to use it to stderr, so ``gateway manifest slack --url ...
> manifest.yaml`` keeps the file clean.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from gateway.errors import UsageError
from gateway.platforms import PLATFORMS
from gateway.types import Manifest, ManifestOptions

__all__ = ["MANIFESTS", "manifest_command", "public_url"]

MANIFESTS: dict[str, Manifest] = {
    name: platform.manifest for name, platform in PLATFORMS.items() if platform.manifest is not None
}
"""The platforms that offer an app registration, by name."""


def manifest_command(args: argparse.Namespace) -> int:
    """Print the manifest of ``args.platform`` to stdout and its instructions to stderr."""
    manifest = MANIFESTS[args.platform]
    try:
        base = public_url(args.url) if args.url else ""
        options = ManifestOptions(
            name=args.name,
            command=args.slash_command,
            form=args.form,
            org=args.org,
            socket=args.socket,
            url=base,
        )
        _check_name(options.name)
        manifest.check(options)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if base.startswith("http://"):
        print("warning: Slack and GitHub want a public https:// URL (locally: a tunnel)", file=sys.stderr)
    print(manifest.render(base, options), end="")
    print(manifest.instructions(base, options), file=sys.stderr)
    return 0


def public_url(url: str) -> str:
    """``url`` without a trailing slash; it must be an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--url must be the gateway's public https:// URL, got {url!r}")
    if parts.query or parts.fragment:
        raise UsageError("--url must not have a query or fragment")
    return url.rstrip("/")


def _check_name(name: str) -> None:
    # The tighter of the platforms' limits (Slack's manifest schema: 1-35 characters).
    if not 1 <= len(name) <= 35:
        raise UsageError(f"--name must be 1 to 35 characters, got {len(name)}")
