"""``kdtui serve``: the TUI in a browser tab, on loopback unless ``--expose`` is given (with a token).

The recommended way to reach a remote kdtui is an SSH tunnel to the loopback server:
``ssh -L 8000:127.0.0.1:8000 gpu-server`` then http://127.0.0.1:8000 (docs/security.md).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import secrets
import shlex
import sys
from typing import Any

from kdtui.cli.common import Parents, add_command, open_store
from kdtui.errors import KdtuiError

COOKIE = "kdtui_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_server(command: str, host: str, port: int, token: str | None) -> Any:
    """A textual-serve Server whose page, websocket and downloads need ``token`` (when given).

    The token comes once in the link (``/?token=...``) and is kept in an HttpOnly,
    SameSite=Strict cookie, which the browser sends with the websocket handshake.
    """
    from aiohttp import web
    from textual_serve.server import Server

    class TokenServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            if token is not None:
                app.middlewares.append(_require_token)
            return app

    @web.middleware
    async def _require_token(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/static/"):  # the page's own JavaScript and fonts
            return await handler(request)
        supplied = request.query.get("token") or request.cookies.get(COOKIE) or ""
        assert token is not None
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return web.Response(status=403, text="kdtui: this server needs its access token: open the link "
                                                 "`kdtui serve` printed\n")
        response: web.StreamResponse = await handler(request)
        if "token" in request.query and not response.prepared:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return TokenServer(command, host=host, port=port, title="kdtui")


def cmd_serve(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise KdtuiError(f"--port {args.port}: choose a port between 1 and 65535")
    loopback = is_loopback(args.host)
    if not loopback and not args.expose:
        raise KdtuiError(f"--host {args.host} would open the TUI (and its SQL console) to the network; use an SSH "
                         "tunnel to 127.0.0.1 instead (docs/security.md), or add --expose to require a token")
    store = open_store(args)
    store.ensure_schema()
    command = shlex.join([sys.executable, "-m", "kdtui.cli", "tui", "--store", str(store.root.resolve())])
    token = secrets.token_urlsafe(24) if args.expose else None
    url = f"http://{args.host}:{args.port}/" + (f"?token={token}" if token else "")
    if token:
        print("kdtui: WARNING: --expose serves the TUI beyond this machine, over plain HTTP; anyone with the link "
              "below can use it as you. Prefer an SSH tunnel (docs/security.md).", file=sys.stderr)
    print(f"kdtui: serving the TUI at {url} (ctrl+c stops)", file=sys.stderr, flush=True)
    token_server(command, args.host, args.port, token).serve()
    return 0


def register(sub: Any, parents: Parents) -> None:
    serve = add_command(sub, "serve", "serve the TUI in a browser tab (textual-serve), on this machine only "
                        "unless --expose", cmd_serve, parents)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--expose", action="store_true",
                       help="allow a non-loopback --host; a fresh access token is then required on the page and "
                            "the websocket, and printed once in the link")
