"""The HTTP API, `/api/v1`: the enforcement platform's way in (items, appeals) and out (decisions).

A thin FastAPI layer over the same services as the command line and the UI, handed the
application context. Every request needs `Authorization: Bearer <token>` (a token from
`workbench tokens create`): 401 without one or with an unknown, revoked or expired token, or a
disabled user (checked before a request's body is read); the services check the role policy
(`roles.yaml`, narrowed by the token's scopes) and a refusal is a 403 naming the missing
permission, audited as `permission.denied` (`workbench.refusals`). Domain errors are 400
(404 for an unknown item) with a one-line `detail`.

- `POST /api/v1/items`: a batch of up to `MAX_BATCH` items for one `source`, through file
  ingest's own validation and quarantine (`core.ingest.ingest_paths` over a temporary JSONL
  file in the data folder); idempotent by the platform's id (`<source>:<id>`). Needs `ingest`.
  When a champion model exists, the batch's own items (never the rest of the store) are scored
  and their cases built, as the token's user: by default only when the token also has `score`
  and `build_cases` (otherwise they are stored unscored and `not_scored` says why, in one line);
  `score=true` demands it (403 before anything is stored when the token lacks either);
  `score=false` skips it.
  `refused` names each item not stored: `{index, id, field, reason, conflict}` (index in the batch).
  Each item keeps its own metadata keys.
  A batch is refused whole (nothing stored) for a text over `MAX_TEXT_CHARS`, metadata nested
  deeper than `MAX_METADATA_DEPTH` or larger than `MAX_METADATA_BYTES`, or a string that is not
  valid Unicode; a request body over `MAX_BODY_BYTES` is a 413, one holding a key twice in an
  object a 422 naming its path (`items[3].text`), as file ingest refuses such a JSONL row, and
  so is a field an item does not have (`items[0].author_id`: other fields go in `metadata`).
  A batch the store refused in part (`lost`) is a 503 with the same body: retry it.
- `GET /api/v1/items/{item_id}`: the item with its prediction of record, campaign, case and
  current decision; text and every string in its metadata masked as the UI masks the text
  (`labeling.masking`) unless `reveal=true` (needs `reveal`; audited and counted toward the
  reader's exposure as a reveal on the screen is, a case-less item's too: `workbench.api_reveal`).
  Needs `read`.
- `POST /api/v1/items/{item_id}/appeals`: `{reason}` files an appeal on the user's behalf.
- `GET /api/v1/decisions?after=<id>&limit=<n>`: decisions in id order, `next_cursor` to page on
  (`workbench.api_decisions`: a reviewer's name only for a lead, else a stable pseudonym).
- `GET /api/v1/jobs/rescore`: the latest rescoring of the open cases after an automatic promotion
  in `serve` (`workbench.learning`): state (none, running, finished, failed), done of total items
  scored, the counts when finished, the error when failed. Needs `read`.

OpenAPI docs: `/api/v1/docs`, `/api/v1/openapi.json`. FastAPI is imported here only: the CLI
imports this module inside `workbench serve`.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from core.principals import Principal  # standard library only
from core.readers import MAX_TEXT_CHARS, DuplicateKey, unique_keys  # file ingest's own rules
from core.text import MAX_REASON_CHARS, one_line  # standard library only

from .api_decisions import decisions_page, name_item_reviewer  # reviewers as the reader may see
from .api_reveal import item_or_404 as _item_or_404, item_view  # the item view and its reveal
from .refusals import audit_refusal  # a 403 in the audit log

if TYPE_CHECKING:  # pragma: no cover
    from .context import AppContext

PREFIX = "/api/v1"
MAX_BATCH = 1000
MAX_PAGE = 1000
MAX_CURSOR = 2**63 - 1  # the largest id a 64-bit integer column holds
MAX_BODY_BYTES = 32 * 1024 * 1024  # a whole request; a full batch of ordinary posts is far below
# MAX_TEXT_CHARS (one item's text) is file ingest's own limit (`core.readers`).
MAX_METADATA_DEPTH = 32  # levels of nested objects and lists in one item's metadata
MAX_METADATA_BYTES = 64 * 1024  # one item's metadata, as JSON
# The temporary file's own column names, so no metadata key can collide with them.
_COLS = {"id": "__id", "text": "__text", "author": "__author", "created": "__created_at"}


class ItemIn(BaseModel):
    """One item as the platform has it. `id` and `text` are optional here so that a row lacking
    them is quarantined (as file ingest does) rather than refusing the whole batch. A field not
    named here is refused (422 naming it), never dropped: `author_id` for `author` would store
    every item without its author."""

    model_config = ConfigDict(extra="forbid")
    # Any, not Union[str, int]: lax validation would turn 1.0 and true into 1; file ingest's own
    # rules (`core.readers.ident_text`, its time parser) quarantine what they cannot take.
    id: Optional[Any] = None
    text: Optional[Any] = None
    author: Optional[Any] = None
    created_at: Optional[Any] = None
    surface: Optional[str] = None
    metadata: Optional[dict[str, Any]] = None

    @field_validator("text")
    @classmethod
    def _text_length(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"text is {len(value)} characters, over MAX_TEXT_CHARS ({MAX_TEXT_CHARS})")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_bounded(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if value is None:
            return value
        depth = _depth(value)
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests {depth} levels deep, over MAX_METADATA_DEPTH ({MAX_METADATA_DEPTH})")
        size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes as JSON, over MAX_METADATA_BYTES ({MAX_METADATA_BYTES})")
        return value


class ItemBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")  # `score` in the body, not the query, is no silent default
    source: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_BATCH)
    surface: Optional[str] = None


class AppealIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)  # the services' one rule
    decision_id: Optional[int] = Field(None, ge=1)  # the decision contested (from its event)


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


MAX_ERRORS_SHOWN = 20  # a batch of 10,000 bad rows answers with the first few, and the count


def validation_errors(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A request that failed validation, as one line naming where (`items[3].text`) and why, plus
    the first errors as {loc, msg, type}. The offending input is never echoed back: it is hostile
    and may be megabytes."""
    shown = []
    for e in errors[:MAX_ERRORS_SHOWN]:
        loc = [one_line(str(p), 100) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
        where = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc).lstrip(".") or "request"
        msg = (str(e.get("msg", "invalid")).splitlines() or ["invalid"])[0][:300]
        if e.get("type") == "extra_forbidden":  # the key is hostile input: named (cut) in `loc` only
            msg = "unknown field (an item's own fields go in its metadata)"
        shown.append({"loc": where, "msg": msg, "type": str(e.get("type", ""))})
    first = shown[0] if shown else {"loc": "request", "msg": "invalid request"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return {"detail": f"{first['loc']}: {first['msg']}{more}", "errors": shown}


def _depth(value: Any) -> int:
    """Nesting depth of JSON-like `value` (a scalar is 0), without recursion: the input is hostile."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, level = todo.pop()
        if isinstance(v, (dict, list, tuple)):
            deepest = max(deepest, level)
            if level <= MAX_METADATA_DEPTH:  # past the limit one level is enough to refuse
                todo.extend((c, level + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


class _BodyLimit:
    """ASGI middleware refusing a request body over `limit` bytes with 413, by its Content-Length
    and by the bytes actually received (a chunked body has none), before any route parses it.
    A JSON body is parsed here, once: a key given twice is a 422 naming where (json.loads would
    keep the last value silently), and the route reads the parsed body (`_ParsedRequest`).
    A request that may carry a body is authenticated first (`authenticate`, raising a 401
    HTTPException): an anonymous client's 32 MB of JSON is never read or parsed (seconds of CPU
    and hundreds of MB each); the route reuses the principal found."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES,
                 authenticate: Optional[Callable[[Optional[str]], Principal]] = None) -> None:
        self.app, self.limit, self.authenticate = app, limit, authenticate

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.strip().isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        may_have_body = (scope.get("method") not in ("GET", "HEAD", "OPTIONS") or b"transfer-encoding" in headers
                         or declared.strip() not in (b"", b"0"))
        if self.authenticate is not None and may_have_body:
            given = headers.get(b"authorization")
            try:  # a store read: off the event loop
                scope[_PRINCIPAL] = await run_in_threadpool(self.authenticate, given and given.decode("latin-1"))
            except HTTPException as exc:
                await JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)(scope, receive, send)
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False
        if body and _is_json(scope):
            try:  # parsed here once, for the route too (`_ParsedRequest`)
                scope[_PARSED] = json.loads(body, object_pairs_hook=unique_keys)
            except DuplicateKey:
                await JSONResponse(_duplicate_key(body), status_code=422)(scope, receive, send)
                return
            except (ValueError, RecursionError):
                pass  # not JSON: FastAPI's own parse answers it (422 json_invalid)

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        detail = f"request body over MAX_BODY_BYTES ({self.limit} bytes); send fewer items per batch"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


_PARSED = "workbench.json_body"  # the scope key holding the body `_BodyLimit` parsed
_PRINCIPAL = "workbench.principal"  # the scope key holding who `_BodyLimit` authenticated


def _is_json(scope: Mapping[str, Any]) -> bool:
    """Whether FastAPI would parse this request's body as JSON (its content type says so)."""
    ctype = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
    return ctype == b"application/json" or (ctype.startswith(b"application/") and ctype.endswith(b"+json"))


def _duplicate_key(body: bytes) -> dict[str, Any]:
    """The 422 answer for a body holding a key twice in one object, naming its JSON path
    (`items[0].text`) as `validation_errors` names a field. Only on this error path is the body
    parsed a second time, to find where."""
    found: list[tuple[int, str, str]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        try:
            return unique_keys(pairs)
        except DuplicateKey as exc:
            obj = dict(pairs)
            found.append((id(obj), exc.key, str(exc)))
            return obj

    doc = json.loads(body, object_pairs_hook=hook)
    target, key, why = found[0]
    where, todo = "", [(doc, "")]
    while todo:  # without recursion: the input is hostile
        v, path = todo.pop()
        if id(v) == target:
            where = path
            break
        if isinstance(v, dict):
            todo.extend((c, f"{path}.{one_line(str(k), 100)}") for k, c in v.items())
        elif isinstance(v, list):
            todo.extend((c, f"{path}[{i}]") for i, c in enumerate(v))
    loc = f"{where}.{one_line(key, 100)}".lstrip(".")
    return {"detail": f"{loc}: {why}; send each key once",
            "errors": [{"loc": loc, "msg": why, "type": "duplicate_key"}]}


class _ParsedRequest(Request):
    """A request whose JSON body `_BodyLimit` already parsed (duplicate keys refused): not twice."""

    async def json(self) -> Any:
        if _PARSED in self.scope:
            return self.scope[_PARSED]
        return await super().json()


class _ParsedRoute(APIRoute):
    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def route(request: Request) -> Any:
            return await handler(_ParsedRequest(request.scope, request.receive))

        return route


def create_api(app: "AppContext") -> FastAPI:
    """The API as its own FastAPI app, routes relative to where it is mounted (`PREFIX`)."""
    from core.accounts import AccountError
    from core.hooks import PermissionDenied
    from core.ingest import IngestError
    from labeling.errors import AppealPending

    app.roles()  # installs the role policy the services check
    api = FastAPI(title="T&S workbench API", version="1", docs_url="/docs", redoc_url="/redoc",
                  openapi_url="/openapi.json")
    api.router.route_class = _ParsedRoute

    def authenticate(authorization: Optional[str]) -> "Principal":
        from core.accounts import principal_for_token

        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "send Authorization: Bearer <token> (workbench tokens create NAME)",
                                headers={"WWW-Authenticate": "Bearer"})
        try:
            return principal_for_token(app.store(), token.strip())
        except AccountError as exc:
            raise HTTPException(401, _one_line(exc), headers={"WWW-Authenticate": "Bearer"}) from None

    api.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES, authenticate=authenticate)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_errors(exc.errors()), status_code=422)

    @api.exception_handler(PermissionDenied)  # audited: who tried what (`workbench.refusals`)
    async def _denied(request: Request, exc: PermissionDenied) -> JSONResponse:
        await run_in_threadpool(audit_refusal, app, request.scope.get(_PRINCIPAL), "api",
                                f"{request.method} {request.scope.get('path', '')}", _one_line(exc))
        return JSONResponse({"detail": _one_line(exc)}, status_code=403)

    @api.exception_handler(AccountError)
    async def _account(request: Request, exc: AccountError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=400)

    @api.exception_handler(IngestError)
    async def _ingest(request: Request, exc: IngestError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=400)

    @api.exception_handler(AppealPending)  # a retried filing that landed: the case it opened
    async def _appeal_pending(request: Request, exc: AppealPending) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc), "case_id": exc.case_id}, status_code=409)

    @api.exception_handler(ValueError)  # LabelingError and the other domain errors are ValueErrors
    async def _value(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=400)

    def principal(request: Request, authorization: Optional[str] = Header(None)) -> "Principal":
        known = request.scope.get(_PRINCIPAL)  # found by `_BodyLimit` before it read the body
        who = request.scope[_PRINCIPAL] = known if isinstance(known, Principal) else authenticate(authorization)
        return who  # kept in the scope: a refusal's audit event names who

    @api.post("/items", summary="Ingest a batch of items (needs ingest)")
    def post_items(batch: ItemBatch, score: Optional[bool] = None,
                   who: "Principal" = Depends(principal)) -> Any:
        out = ingest_batch(app, batch, who, score=score)
        if out["lost"] or out["errors"]:  # not stored: a 2xx would tell the platform they were
            detail = f"{out['lost']} items not stored ({out['errors'][0] if out['errors'] else 'lost'}); " \
                     "retry the batch: stored items count as duplicates"
            return JSONResponse({"detail": _one_line(ValueError(detail))[:500], **out}, 503,
                                headers={"Retry-After": "5"})
        return out

    @api.get("/items/{item_id:path}/appeals", include_in_schema=False)
    def _appeals_get(who: "Principal" = Depends(principal)) -> None:  # no route answers before the token
        raise HTTPException(405, "POST an appeal")

    @api.post("/items/{item_id:path}/appeals", summary="File an appeal on a user's behalf (needs appeal)")
    def post_appeal(item_id: str, body: AppealIn, who: "Principal" = Depends(principal)) -> dict[str, Any]:
        from core.hooks import check_permission
        from labeling.appeals import appeal

        check_permission(who, "appeal", f"item {item_id}")  # before the item is looked up: no 404 oracle
        _item_or_404(app, item_id, who)
        case = appeal(app.store(), item_id, who, body.reason, app.taxonomy(), config=app.queues(),
                      decision_id=body.decision_id)
        return {k: case.get(k) for k in ("id", "item_id", "queue", "state", "priority", "due_at", "reopened_from")}

    @api.get("/items/{item_id:path}", summary="An item with its prediction, case and decision (needs read)")
    def get_item(item_id: str, reveal: bool = False, who: "Principal" = Depends(principal)) -> dict[str, Any]:
        return name_item_reviewer(app, who, item_view(app, item_id, who, reveal))

    @api.get("/decisions", summary="Decisions in id order, paged by cursor (needs read)")
    def get_decisions(after: int = Query(0, ge=0, le=MAX_CURSOR), limit: int = Query(100, ge=1, le=MAX_PAGE),
                      who: "Principal" = Depends(principal)) -> dict[str, Any]:
        return decisions_page(app, who, after, limit)

    @api.get("/jobs/rescore", summary="Progress of the latest rescoring after a promotion (needs read)")
    def get_rescore_job(who: "Principal" = Depends(principal)) -> dict[str, Any]:
        return job_view(app, who, "rescore")

    @api.get("/jobs/retrain", summary="The latest retrain started from the web UI: steps and verdict (needs read)")
    def get_retrain_job(who: "Principal" = Depends(principal)) -> dict[str, Any]:
        return job_view(app, who, "retrain")

    return api


def create_app(app: "AppContext") -> FastAPI:
    """A FastAPI app serving only the API at `PREFIX` (tests, benchmarks, a headless server)."""
    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    root.mount(PREFIX, create_api(app))
    return root


def mount_api(app: "AppContext", server: Any) -> None:
    """Put the API in front of another Starlette/FastAPI app's routes (Gradio's, in `serve`)."""
    from starlette.routing import Mount

    server.router.routes.insert(0, Mount(PREFIX, app=create_api(app)))


# -- the work behind each route -----------------------------------------------------------------
def ingest_batch(app: "AppContext", batch: ItemBatch, who: "Principal",
                 score: Optional[bool] = None) -> dict[str, Any]:
    """Write the batch as JSONL in the data folder and ingest it as a file (same validation,
    quarantine, idempotency and audit); one ingest run per surface in the batch. Then the batch's
    own items, and only they, are scored by the champion and their cases built, as `who`
    (`_score_batch`): `score=None` does so when `who` may (`score`, `build_cases`) and otherwise
    says why not in `not_scored`; `score=True` refuses the request (403, nothing stored) when
    `who` may not; `score=False` skips it."""
    from core.hooks import PermissionDenied, check_permission
    from core.ingest import ColumnMap, ingest_paths

    check_permission(who, "ingest", "items")  # before writing anything
    not_scored = None if score is not False else "score=false: stored, not scored"
    if score is not False:
        try:
            check_permission(who, "score", "api batch")
            check_permission(who, "build_cases", "api batch")
        except PermissionDenied as exc:
            if score:  # asked for explicitly: refused before anything is written
                raise
            not_scored = f"{_one_line(exc)}: stored, not scored (`workbench score` and `cases build` pick them up)"
    _check_encodable(batch)  # a row the JSONL file cannot hold would stop the batch half stored
    _check_surfaces(batch)  # so would a surface the items table cannot hold, in a later group
    store, taxonomy = app.store(), app.taxonomy()
    for i, it in enumerate(batch.items):
        for k in it.metadata or {}:
            if k.startswith("__"):
                raise ValueError(f"items[{i}].metadata: key {k!r}: keys may not start with '__'")
    groups: dict[Optional[str], list[int]] = {}  # surface -> the batch indices of its items, in order
    for i, it in enumerate(batch.items):
        groups.setdefault(it.surface or batch.surface, []).append(i)

    counts = {k: 0 for k in ("read", "stored", "duplicate", "conflict", "quarantined", "lost")}
    runs, reasons, errors, refused = [], {}, [], []
    # Each row carries only its own metadata keys (meta_all): never another item's, as null.
    columns = ColumnMap(id=_COLS["id"], text=_COLS["text"], author=_COLS["author"],
                        created=_COLS["created"], meta_all=True)
    folder = store.data_dir / "api-batches"
    folder.mkdir(parents=True, exist_ok=True)
    for surface, indices in groups.items():
        fd, path = tempfile.mkstemp(prefix=f"{batch.source}-", suffix=".jsonl", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for it in (batch.items[i] for i in indices):
                    row = {_COLS["id"]: it.id, _COLS["text"]: it.text, _COLS["author"]: it.author,
                           _COLS["created"]: it.created_at, **(it.metadata or {})}
                    fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            summary = ingest_paths(store, taxonomy, [path], source=batch.source, fmt="jsonl", columns=columns,
                                   surface=surface, actor=who, progress=False,
                                   report=lambda rec, at=indices: refused.append(_refused(batch, at, rec)))
        finally:
            os.unlink(path)
        runs.append(summary.run_id)
        for k, n in summary.counts().items():
            counts[k] += n
        for f in summary.files:
            for reason, n in f.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + n
            if f.error:
                errors.append(f.error)
    out: dict[str, Any] = {"source": batch.source, **counts, "quarantine_reasons": reasons,
                           "refused": sorted(refused, key=lambda r: r["index"]), "ingest_runs": runs,
                           "errors": errors, "scored": None, "cases": None, "not_scored": not_scored}
    if not_scored is None and (counts["stored"] or counts["duplicate"]):
        # Duplicates too: a retry, maybe of a batch stored by a request that failed before
        # scoring; score what the champion has not seen, or those items would never be.
        out.update(_score_batch(app, who, _batch_item_ids(batch, out["refused"])))
    return out


def _batch_item_ids(batch: ItemBatch, refused: list[dict[str, Any]]) -> list[str]:
    """The store ids of the batch's items that ingest stored or found stored (not those it
    refused), by file ingest's rule (`core.ingest`: `<source>:<id>`, hashed when too long)."""
    import hashlib

    from core.ingest import MAX_ID_LEN
    from core.readers import BadRow, ident_text

    skip = {r["index"] for r in refused}
    out = []
    for i, it in enumerate(batch.items):
        try:
            raw = ident_text(it.id, "id", "id") if i not in skip else None
        except BadRow:
            raw = None
        if raw:
            item_id = f"{batch.source}:{raw}"
            out.append(item_id if len(item_id) <= MAX_ID_LEN
                       else f"{batch.source}:h{hashlib.sha1(raw.encode()).hexdigest()[:24]}")
    return out


def _refused(batch: ItemBatch, indices: list[int], record: Mapping[str, Any]) -> dict[str, Any]:
    """A quarantine record as the platform can act on it: which item of its batch (the record's
    line in the group's file is that group's item), which field, why; never the stored text."""
    line = record.get("line")  # one item a line, so always in range; a callback must not raise
    index = indices[line - 1] if isinstance(line, int) and 0 < line <= len(indices) else -1
    names = {v: "created_at" if k == "created" else k for k, v in _COLS.items()}
    col = str(record["field"])
    ident = batch.items[index].id if index >= 0 else None  # echoed only when it can be an id: hostile input
    shown = ident if type(ident) in (str, int) and len(str(ident)) <= 200 else None
    return {"index": index, "id": shown, "field": names.get(col) or ("item" if col == "row" else f"metadata.{col}"),
            "reason": str(record["reason"])[:300], "conflict": "stored_text" in record}


def _check_encodable(batch: ItemBatch) -> None:
    """ValueError naming `items[i].<field>` for a string UTF-8 cannot encode (a lone surrogate)."""
    if batch.surface is not None and not _encodable(batch.surface):
        raise ValueError("surface: not valid Unicode (a lone surrogate); send UTF-8 text")
    for i, it in enumerate(batch.items):
        for name in ("id", "text", "author", "created_at", "surface", "metadata"):
            if not _encodable(getattr(it, name)):
                raise ValueError(f"items[{i}].{name}: not valid Unicode (a lone surrogate); send UTF-8 text")


def _check_surfaces(batch: ItemBatch) -> None:
    """ValueError naming `items[i].surface` (or `surface`) for a name the items table cannot hold
    (`core.readers.name_problem`, file ingest's rule), before any group is stored."""
    from core.readers import name_problem
    from core.schema import Item

    limit = Item.__table__.c.surface.type.length
    named = [("surface", batch.surface)] + [(f"items[{i}].surface", it.surface) for i, it in enumerate(batch.items)]
    for where, value in named:
        problem = name_problem("surface", value, limit) if value else None
        if problem is not None:
            raise ValueError(f"{where}: {problem}")


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _score_batch(app: "AppContext", who: "Principal", item_ids: list[str]) -> dict[str, Any]:
    """Score the batch's items the champion has not seen (`item_ids`, nothing else in the store)
    and build their cases, as `who` (its `score` / `build_cases` already checked by the caller);
    `not_scored` says why nothing was done when there is no champion."""
    from sqlalchemy import select

    from core.predictions import champion_version
    from core.schema import Case, Prediction
    from labeling.cases import build_cases
    from labeling.rescore import score_ids  # scores exactly the ids given, with the champion

    store, P, C = app.store(), Prediction.__table__, Case.__table__
    todo, uncased = set(item_ids), set(item_ids)
    with store.read() as conn:
        champ = champion_version(conn)
        if champ is None:
            return {"not_scored": "no champion model yet: stored, not scored (`workbench score` scores them)"}
        for start in range(0, len(item_ids), 900):
            chunk = item_ids[start:start + 900]
            todo -= set(conn.execute(select(P.c.item_id).where(P.c.model_version == champ,
                                                                P.c.item_id.in_(chunk))).scalars())
            uncased -= set(conn.execute(select(C.c.item_id).where(C.c.campaign_id.is_(None),
                                                                  C.c.item_id.in_(chunk))).scalars())
    scored = score_ids(store, app.taxonomy(), app.models(), champ, sorted(todo), False, lambda n: None)
    cases = (build_cases(store, app.taxonomy(), app.queues(), actor=who, progress=False, item_ids=item_ids)
             if scored or uncased else None)
    return {"scored": scored, "cases": cases}


def job_view(app: "AppContext", who: "Principal", kind: str) -> dict[str, Any]:
    """The latest background job of `kind` on the context (`rescore`: the rescoring after a
    promotion; `retrain`: a retrain started from the web UI), as `workbench.learning` reports it."""
    from core.hooks import check_permission

    from .learning import rescore_state, retrain_state

    check_permission(who, "read", f"{kind} job")
    return rescore_state(app.rescore_job) if kind == "rescore" else retrain_state(app.retrain_job)
