"""``kdtui serve``: the TUI in a browser tab, always behind a token, on loopback unless ``--expose``.

Who could otherwise drive it (docs/security.md): any other local user (loopback is shared by
every account on the server) and any web page open in the user's browser (a page may open a
websocket to 127.0.0.1, or rebind a DNS name to it). So, as Jupyter does:

* a fresh token is printed in the link, on loopback too; the first visit trades it for an
  HttpOnly, SameSite=Strict cookie and a redirect to ``/``, so it leaves the address bar;
* every route checks ``Host`` (a name this server answers to: DNS rebinding fails) and, where a
  browser sent one, that ``Origin`` is this very host (a foreign page's websocket fails);
* every response carries ``Referrer-Policy: no-referrer``.

The recommended way to reach a remote kdtui is an SSH tunnel to the loopback server:
``ssh -L 8000:127.0.0.1:8000 gpu-server`` then the printed link on the laptop.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import ipaddress
import secrets
import shlex
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from kdtui.cli.common import Parents, add_command, logs, open_store
from kdtui.errors import KdtuiError

COOKIE = "kdtui_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def link_host(host: str) -> str:
    """The host a person can open: the machine's name for a wildcard bind (0.0.0.0 is no address to visit)."""
    if is_wildcard(host):
        return socket.getfqdn() or socket.gethostname()
    return f"[{host}]" if ":" in host else host


def allowed_hosts(host: str) -> set[str]:
    """Names (without port) a request's ``Host`` may carry: loopback names always (SSH tunnels), and for an
    exposed server its bound address and this machine's names."""
    names = set(LOOPBACK_NAMES)
    if not is_loopback(host):
        names |= {host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}
        if is_wildcard(host):
            with contextlib.suppress(OSError):
                names |= {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    return names


def _hostname(netloc: str) -> str:
    """``host`` of ``host:port`` / ``[v6]:port``, lower-case."""
    return (urlsplit(f"//{netloc}").hostname or "").lower()


def cookie_name(port: int) -> str:
    # Cookies are not kept apart by port: two servers on one machine must not overwrite each other's.
    return f"{COOKIE}_{port}"


def token_server(command: str, host: str, port: int, token: str) -> Any:
    """A textual-serve Server whose every route checks Host and Origin, and whose page, websocket and
    downloads need ``token`` (from the link once, then from the cookie)."""
    from aiohttp import web
    from textual_serve.server import Server

    hosts = allowed_hosts(host)
    cookie = cookie_name(port)

    class TokenServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(_guard)
            app.on_response_prepare.append(_no_referrer)
            return app

        async def handle_index(self, request: web.Request) -> Any:
            # The page's websocket and static links follow the address the browser used (a tunnel's
            # local port, a host name) instead of the bind address; Host was checked by the guard.
            self.public_url = f"http://{request.host}"
            return await super().handle_index(request)

    async def _no_referrer(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")

    def _refuse(why: str) -> web.Response:
        return web.Response(status=403, text=f"kdtui: {why}\n")

    @web.middleware
    async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if _hostname(request.host) not in hosts:
            return _refuse(f"this server does not answer to the host {request.host!r}; open the link "
                           "`kdtui serve` printed")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            return _refuse("requests from another site's page are refused")
        if request.path.startswith("/static/"):  # the page's own JavaScript and fonts
            return await handler(request)
        given = request.query.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _refuse("wrong access token: open the link `kdtui serve` printed")
            # Trade the token for a cookie and take it out of the address bar (and of history and logs).
            redirect = web.HTTPFound(request.rel_url.without_query_params("token"))
            redirect.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
            return redirect
        if not hmac.compare_digest(request.cookies.get(cookie, "").encode(), token.encode()):
            return _refuse("this server needs its access token: open the link `kdtui serve` printed")
        response: web.StreamResponse = await handler(request)
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
    command = shlex.join([sys.executable, "-m", "kdtui.cli", "tui", "--store", str(store.root.resolve()),
                          "--logs", str(logs(args).resolve()), "--sql-timeout", str(args.sql_timeout)])
    token = secrets.token_urlsafe(24)
    url = f"http://{link_host(args.host)}:{args.port}/?token={token}"
    if not loopback:
        print("kdtui: WARNING: --expose serves the TUI beyond this machine, over plain HTTP; anyone with the link "
              "below can use it as you. Prefer an SSH tunnel (docs/security.md).", file=sys.stderr)
    print(f"kdtui: serving the TUI at {url} (the token is your key: don't share the link; ctrl+c stops)",
          file=sys.stderr, flush=True)
    token_server(command, args.host, args.port, token).serve()
    return 0


def register(sub: Any, parents: Parents) -> None:
    from kdtui.config.limits import TUI_SQL_TIMEOUT_S

    serve = add_command(sub, "serve", cmd_serve, parents)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--expose", action="store_true",
                       help="allow a non-loopback --host (the token is required either way)")
    serve.add_argument("--sql-timeout", dest="sql_timeout", type=float, default=TUI_SQL_TIMEOUT_S,
                       help=f"stop a console query after this many seconds (default: {TUI_SQL_TIMEOUT_S:g})")
