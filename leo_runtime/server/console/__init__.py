"""``/console``: the operators' page, served by ``leo run`` (off while ``LEO_ADMIN_TOKEN`` is unset).

Server-rendered jinja2 templates shipped in this package, SVG charts and graphs drawn here
(`charts`, `graph`), and a few lines of plain JavaScript only for the live refresh: every page
and every action works with JavaScript off. Everything a page shows comes from
`leo_runtime.operations`, the functions behind `leo status --json` and the other CLI commands:
the console is one more view of that layer, never a second implementation of it.

Sign-in exchanges the admin token for a session: a random token in an ``HttpOnly``,
``SameSite=Strict`` cookie scoped to ``/console``, kept in the store only as its SHA-256 with the
session's CSRF token (so every host of a cluster knows it, and sign-out ends it everywhere).
The cookie is ``Secure`` when the request came over https, when a proxy in front says so
(``X-Forwarded-Proto: https``) or when ``server.public_url`` is an https URL. Trusting the header
for this is safe: it can only add the flag, never drop it. Every state-changing form carries
``csrf_token``; a POST without a session or with a wrong or missing token is a 403.
"""

from __future__ import annotations

import functools
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from ...config import Config
from ...errors import LeoError, NotFound, UsageError
from ...operations import (
    activity_totals,
    bot_activity,
    bot_health,
    bot_report,
    host_report,
    partner_report,
    pipeline_report,
    plan_checkpoint_reset,
    queue_detail,
    redrive_dead_letters,
    replay_webhook,
    reset_checkpoint,
    set_bot_paused,
    set_webhook_status,
    status_report,
    webhook_health,
)
from ...partners import hash_token, revoke_partner
from ...store import Store
from ...timeutil import now_ms
from ..auth import ADMIN_TOKEN_ENV, is_admin
from ..problems import status_of
from .charts import activity_chart
from .graph import pipeline_svg
from .views import render

COOKIE = "leo_console"
SESSION_SECONDS = 12 * 3600
FORM_LIMIT = 64 * 1024
"""The largest form body the console reads (its forms hold a few short fields)."""
EVENTS_SHOWN = 20
MAX_EVENTS_SHOWN = 200

T = TypeVar("T")
router = APIRouter(prefix="/console", include_in_schema=False)


@dataclass(frozen=True)
class Session:
    token: str
    csrf: str


def install(app: FastAPI) -> None:
    """Add the console's routes (each answers 404 while the admin token is unset)."""
    app.include_router(router)


# -- sessions and forms -------------------------------------------------------------------------------
def _store(request: Request) -> Store:
    return request.app.state.store


def _config(request: Request) -> Config | None:
    lend = request.app.state.context.config
    return lend() if lend is not None else None


def _check_on(request: Request) -> None:
    if request.app.state.admin_token_hash is None:
        raise HTTPException(404, f"the console is off: set {ADMIN_TOKEN_ENV} in the environment of `leo run` to turn it on")


def _session(request: Request) -> Session | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        return None
    csrf = _store(request).console_session(hash_token(token), now_ms())
    return Session(token, csrf) if csrf is not None else None


def _secure(request: Request) -> bool:
    public = request.app.state.context.settings.server.public_url or ""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https" or public.lower().startswith("https://")


def _cookie(request: Request, value: str, max_age: int) -> str:
    secure = "; Secure" if _secure(request) else ""
    return f"{COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"


async def _form(request: Request) -> dict[str, str]:
    """The request's urlencoded form: each field at most once, the body at most `FORM_LIMIT` bytes.
    Any other body counts as an empty form (so an action without its CSRF token is a 403 however
    it was sent)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise HTTPException(413, f"the form is larger than {FORM_LIMIT:,} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise HTTPException(400, "the form is not UTF-8") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise HTTPException(400, f"the form repeats the field {name[:40]!r}")
        form[name] = value
    return form


def _page(request: Request, template: str, session: Session | None, status: int = 200, **values: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(12)
    html = render(template, request=request, csrf=session.csrf if session else "", nonce=nonce, **values)
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _failure(request: Request, session: Session | None, status: int, message: str) -> HTMLResponse:
    return _page(request, "error.html", session, status, status_code=status, message=message)


def _guarded(request: Request, render_page: Callable[[Session], Response]) -> Response:
    """A page for a signed-in operator: without a session, 303 to the sign-in page."""
    _check_on(request)
    session = _session(request)
    if session is None:
        return RedirectResponse("/console/login", 303)
    try:
        return render_page(session)
    except LeoError as exc:
        return _failure(request, session, status_of(exc), str(exc))


async def _action(request: Request, act: Callable[[dict[str, str]], str]) -> Response:
    """A state-changing form: a live session and its CSRF token, then `act(form)` (off the event
    loop), which returns where to go next (303)."""
    _check_on(request)
    form = await _form(request)
    session = await run_in_threadpool(_session, request)
    if session is None:
        return _failure(request, None, 403, "you are not signed in (or your session ended): sign in again")
    if not hmac.compare_digest(form.get("csrf_token", "").encode(), session.csrf.encode()):
        return _failure(request, session, 403, "this form is missing its csrf_token or has a wrong one: reload the page")
    try:
        target = await run_in_threadpool(act, form)
    except LeoError as exc:
        return _failure(request, session, status_of(exc), str(exc))
    return RedirectResponse(target, 303)


def _to(path: str, **query: str | int) -> str:
    return path + ("?" + urlencode(query) if query else "")


def bot_url(bot_id: str) -> str:
    return "/console/bots/" + quote(bot_id, safe="")


# -- sign-in ------------------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request) -> Response:
    _check_on(request)
    if _session(request) is not None:
        return RedirectResponse("/console", 303)
    return _page(request, "login.html", None, error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    _check_on(request)
    form = await _form(request)
    token = form.get("token", "").strip()
    if not token or not is_admin(request, token):
        error = "That is not the admin token." + (
            " (A partner's token cannot open the console.)" if token.startswith("leo_") else "")
        return _page(request, "login.html", None, 401, error=error)
    session = secrets.token_urlsafe(32)
    await run_in_threadpool(_store(request).create_console_session, hash_token(session), secrets.token_urlsafe(24),
                            now_ms() + SESSION_SECONDS * 1000)
    response = RedirectResponse("/console", 303)
    response.headers.append("Set-Cookie", _cookie(request, session, SESSION_SECONDS))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    def end(form: dict[str, str]) -> str:
        token = request.cookies.get(COOKIE, "")
        _store(request).end_console_session(hash_token(token))
        return "/console/login?note=signed-out"

    response = await _action(request, end)
    if response.status_code == 303:
        response.headers.append("Set-Cookie", _cookie(request, "", 0))
    return response


# -- pages --------------------------------------------------------------------------------------------
@router.get("")
def overview(request: Request) -> Response:
    def page(session: Session) -> Response:
        store, config = _store(request), _config(request)
        report = status_report(store, config, system=request.app.state.context.system)
        pipelines = pipeline_report(config, report["bots"])
        for pipeline in pipelines:
            pipeline["svg"] = pipeline_svg(pipeline)
        in_graphs = {bot["id"] for pipeline in pipelines for bot in pipeline["bots"]}
        webhooks = [{**row, "health": webhook_health(row)} for row in report["webhooks"]]
        streams = sorted(report["streams"], key=lambda stream: -stream["lag"])
        totals = activity_totals(store, [bot["id"] for bot in report["bots"]])
        totals.update(
            bots=len(report["bots"]),
            troubled=sum(1 for bot in report["bots"] if bot["state"] in ("failing", "stuck", "backoff")),
            failing_webhooks=sum(1 for row in webhooks if row["health"] in ("failing", "disabled")),
            retrying_webhooks=sum(1 for row in webhooks if row["health"] == "retrying"),
            stream_lag=streams[0]["lag"] if streams else 0,
            stream_lag_id=streams[0]["id"] if streams and streams[0]["lag"] else None,
        )
        others = [{**bot, "health": bot_health(bot)} for bot in report["bots"] if bot["id"] not in in_graphs]
        return _page(request, "overview.html", session, report=report, pipelines=pipelines, hosts=host_report(store),
                     totals=totals, others=others, webhooks=webhooks, note=request.query_params.get("note"))

    return _guarded(request, page)


@router.get("/bots/{bot_id}")
def bot_page(bot_id: str, request: Request) -> Response:
    def page(session: Session) -> Response:
        store, config = _store(request), _config(request)
        bot = _found(functools.partial(bot_report, system=request.app.state.context.system), store, config, bot_id)
        charts = {
            "hour": activity_chart(bot_activity(store, bot_id, 3600, 60), f"{bot_id}: the last hour, per minute"),
            "day": activity_chart(bot_activity(store, bot_id, 86400, 96), f"{bot_id}: the last day, per 15 minutes"),
        }
        return _page(request, "bot.html", session, bot=bot, charts=charts, note=request.query_params.get("note"),
                     count=request.query_params.get("n"))

    return _guarded(request, page)


@router.get("/bots/{bot_id}/reset")
def reset_preview(bot_id: str, request: Request) -> Response:
    """The confirmation of a checkpoint reset: where it goes and how many events it redoes or skips."""
    def page(session: Session) -> Response:
        to = request.query_params.get("time", "").strip() or request.query_params.get("to", "").strip()
        plan = plan_checkpoint_reset(_store(request), _config(request), bot_id, to, request.query_params.get("queue") or None)
        return _page(request, "reset.html", session, bot_id=bot_id, plan=plan, asked=to)

    return _guarded(request, page)


@router.post("/bots/{bot_id}/reset")
async def reset(bot_id: str, request: Request) -> Response:
    def act(form: dict[str, str]) -> str:
        plan = reset_checkpoint(_store(request), _config(request), bot_id, _field(form, "to"), form.get("queue") or None)
        moved = plan.redo or plan.skip
        return _to(bot_url(bot_id), note="redo" if plan.redo else "skip" if plan.skip else "reset", n=moved)

    return await _action(request, act)


@router.post("/bots/{bot_id}/pause")
@router.post("/bots/{bot_id}/resume")
async def pause_or_resume(bot_id: str, request: Request) -> Response:
    paused = request.url.path.endswith("/pause")

    def act(form: dict[str, str]) -> str:
        set_bot_paused(_store(request), _config(request), bot_id, paused)
        return _to(bot_url(bot_id), note="paused" if paused else "resumed")

    return await _action(request, act)


@router.post("/bots/{bot_id}/redrive")
async def redrive(bot_id: str, request: Request) -> Response:
    """Send back every dead letter this bot gave up on (each to the queue it came from)."""
    def act(form: dict[str, str]) -> str:
        store = _store(request)
        queues = sorted({letter.queue for letter in store.dead_letters(bot_id=bot_id)})
        if not queues:
            raise UsageError(f"bot '{bot_id}' has no dead-lettered events waiting")
        sent = sum(len(redrive_dead_letters(store, queue, bot=bot_id)) for queue in queues)
        return _to(bot_url(bot_id), note="redriven", n=sent)

    return await _action(request, act)


@router.get("/queues/{name}")
def queue_page(name: str, request: Request) -> Response:
    def page(session: Session) -> Response:
        text = request.query_params.get("n", "")
        count = min(int(text), MAX_EVENTS_SHOWN) if text.isascii() and text.isdecimal() and len(text) < 6 else EVENTS_SHOWN
        queue = _found(queue_detail, _store(request), _config(request), name, count)
        return _page(request, "queue.html", session, queue=queue, count=count)

    return _guarded(request, page)


@router.get("/partners")
def partners_page(request: Request) -> Response:
    def page(session: Session) -> Response:
        return _page(request, "partners.html", session, partners=partner_report(_store(request)),
                     note=request.query_params.get("note"), count=request.query_params.get("n"))

    return _guarded(request, page)


@router.get("/partners/{name}/revoke")
def revoke_preview(name: str, request: Request) -> Response:
    def page(session: Session) -> Response:
        partner = next((p for p in partner_report(_store(request)) if p["name"] == name), None)
        if partner is None:
            raise UsageError(f"no partner {json.dumps(name)[:80]}")
        return _page(request, "revoke.html", session, partner=partner)

    return _guarded(request, page)


@router.post("/partners/{name}/revoke")
async def revoke(name: str, request: Request) -> Response:
    def act(form: dict[str, str]) -> str:
        revoke_partner(_store(request), name)
        return _to("/console/partners", note="revoked")

    return await _action(request, act)


@router.post("/webhooks/{webhook_id}/{verb}")
async def webhook_action(webhook_id: str, verb: str, request: Request) -> Response:
    """pause, resume or replay a webhook (replay: notify again of every batch not downloaded yet)."""
    if verb not in ("pause", "resume", "replay"):
        raise HTTPException(404, "no such action: pause, resume or replay")

    def act(form: dict[str, str]) -> str:
        store = _store(request)
        if verb == "replay":
            return _to("/console/partners", note="replayed", n=replay_webhook(store, webhook_id))
        set_webhook_status(store, webhook_id, "paused" if verb == "pause" else "active")
        return _to("/console/partners", note=f"webhook-{verb}d")

    return await _action(request, act)


def _found(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)`, whose UsageError (an unknown bot or queue, with a did-you-mean) is a 404 page here."""
    try:
        return func(*args)
    except UsageError as exc:
        raise NotFound(str(exc)) from None


def _field(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise UsageError(f"the form has no {name}")
    return value
