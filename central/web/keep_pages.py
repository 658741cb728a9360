"""Requests to keep footage: the public's form and status lookup (no login), and the
information-management officer's queue.

The public pages are declared ``no_borough`` and have no role guard: nobody logs in. Their
form is protected like the login form (a signed double-submit CSRF token,
``central.access.login_csrf``) and throttled per client address by the request service
(``central.evidence.keep_requests``). They show the reference, the state and dates, never
footage and never what the requester told us. The queue is for information managers (and
admins); a borough's information manager sees and acts on that borough's requests only, one at a
time or closing several at once (each named in the form, so the scope guard checks every one).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.di import Provide
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from central.access import login_csrf
from central.access.auth import Caller, user_with
from central.access.scope import LISTS, Scoped, form_text, in_form, in_path, no_borough, touches
from central.core.providers import Injected
from central.evidence.keep_request_cap import BoroughFull
from central.evidence.keep_request_form import (
    LONGEST_WINDOW,
    MARGIN,
    OUTCOMES,
    REVIEW_DAYS,
    FormErrors,
    PublicStatus,
    parse_form,
)
from central.evidence.keep_requests import MOST_CLOSED_AT_ONCE, KeepRequests
from central.web.dashboard import FORM, DashboardPages, back, client_place, field, login_form, page, signed_form_token
from fleet.clock import utc_now
from fleet.config import CentralSettings
from fleet.errors import BadRequest, NotFound, TooManyRequests

PUBLIC = "/public/keep-footage"
CSRF_COOKIE = "bwv_public_csrf"
FIELDS = {
    "borough": "Borough",
    "place": "Where it happened",
    "date": "Date",
    "time_from": "From (time)",
    "time_to": "Until (time)",
    "shoulder_numbers": "Officers' shoulder numbers",
    "contact": "Your contact address",
}
"""The form's fields and their labels, in the page's order."""
ReferenceQuery = Annotated[str | None, QueryParameter(max_length=40)]
ReferencePath = Annotated[str, PathParameter(min_length=1, max_length=40)]


def _public_page(
    request: Request,
    template: str,
    key: bytes,
    settings: CentralSettings,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context,
) -> Template:
    """A public page: no session, no navigation; with the form's CSRF token and its cookie."""
    token, cookie = signed_form_token(request, key, settings, CSRF_COOKIE, PUBLIC)
    return Template(
        template_name=template,
        status_code=status,
        headers=headers,
        context={"me": None, "nav": [], "here": request.url.path, "token": token, **context},
        cookies=[cookie],
    )


def _form(request, key, settings, keep_requests: KeepRequests, **context) -> Template:
    return _public_page(
        request,
        "keep_form.html",
        key,
        settings,
        boroughs=keep_requests.boroughs(),
        labels=FIELDS,
        margin_h=int(MARGIN.total_seconds() // 3600),
        longest_h=int(LONGEST_WINDOW.total_seconds() // 3600),
        review_days=REVIEW_DAYS,
        values=context.pop("values", {}),
        errors=context.pop("errors", {}),
        **context,
    )


class PublicKeepFootage(DashboardPages):
    """The public's side: ask, then follow the request by its reference."""

    path = PUBLIC

    @get(
        "/",
        summary="The public's form to ask for footage to be kept",
        scope=no_borough("a public form"),
        sync_to_thread=True,
    )
    def form_page(
        self,
        request: Request,
        keep_requests: Injected[KeepRequests],
        login_csrf_key: Injected[bytes],
        settings: Injected[CentralSettings],
    ) -> Template:
        return _form(request, login_csrf_key, settings, keep_requests)

    @post(
        "/",
        summary="Ask for footage to be kept",
        scope=no_borough("a public form: it names a borough, and shows nothing of it"),
        dependencies={"public_form": Provide(login_form)},
        sync_to_thread=True,
    )
    def submit(
        self,
        request: Request,
        public_form: Injected[FormMultiDict],
        keep_requests: Injected[KeepRequests],
        login_csrf_key: Injected[bytes],
        settings: Injected[CentralSettings],
    ) -> Response:
        values = {k: str(public_form.get(k, ""))[:2000] for k in FIELDS}
        if not login_csrf.matches(
            login_csrf_key, request.cookies.get(CSRF_COOKIE), str(public_form.get(login_csrf.FIELD, ""))
        ):
            return _form(
                request,
                login_csrf_key,
                settings,
                keep_requests,
                values=values,
                status=400,
                message="This form had expired or came from another site: nothing was sent. Please check it "
                "and send it again.",
            )
        try:
            status = keep_requests.submit(
                parse_form(values, keep_requests.boroughs(), utc_now()), client_place(request)
            )
        except FormErrors as exc:
            return _form(request, login_csrf_key, settings, keep_requests, values=values, errors=exc.errors, status=400)
        except BoroughFull as exc:
            return _form(
                request,
                login_csrf_key,
                settings,
                keep_requests,
                values=values,
                status=429,
                headers=exc.headers,
                message=f"We could not take your request: {exc.message}. Nothing was sent, and what you typed is "
                "still below. So that no footage is deleted, please phone 101 now (or go to any police station) "
                "and ask for footage to be kept, giving the borough, the place, the date and the times.",
            )
        except TooManyRequests as exc:
            return _form(
                request,
                login_csrf_key,
                settings,
                keep_requests,
                values=values,
                status=429,
                headers=exc.headers,
                message=f"We could not take your request: {exc.message}. You can also phone 101.",
            )
        return Redirect(f"{PUBLIC}/received?reference={status.reference}", status_code=303)

    @get(
        "/received",
        summary="The acknowledgement of a request",
        scope=no_borough("a request's state by its reference: no personal data"),
        sync_to_thread=True,
    )
    def received(
        self,
        request: Request,
        keep_requests: Injected[KeepRequests],
        login_csrf_key: Injected[bytes],
        settings: Injected[CentralSettings],
        reference: ReferenceQuery = None,
    ) -> Template:
        return self._lookup(request, keep_requests, login_csrf_key, settings, reference, new=True)

    @get(
        "/status",
        summary="A request's outcome, by its reference",
        scope=no_borough("a request's state by its reference: no personal data"),
        sync_to_thread=True,
    )
    def status(
        self,
        request: Request,
        keep_requests: Injected[KeepRequests],
        login_csrf_key: Injected[bytes],
        settings: Injected[CentralSettings],
        reference: ReferenceQuery = None,
    ) -> Template:
        return self._lookup(request, keep_requests, login_csrf_key, settings, reference, new=False)

    @staticmethod
    def _lookup(request, keep_requests: KeepRequests, key, settings, reference: str | None, new: bool) -> Template:
        found: PublicStatus | None = None
        message, status, headers = None, 200, None
        if reference:
            try:
                found = keep_requests.status(reference, client_place(request))
            except (NotFound, TooManyRequests) as exc:
                message, status, headers = exc.message, exc.status_code, exc.headers
        return _public_page(
            request,
            "keep_status.html",
            key,
            settings,
            status=status,
            headers=headers,
            s=found,
            new=new and found is not None,
            asked=reference or "",
            message=message,
        )


class KeepRequestPages(DashboardPages):
    """The information-management officer's queue."""

    path = "/keep-requests"

    @get(
        "/",
        summary="Requests to keep footage",
        guards=[user_with("information_manager")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def queue(
        self,
        request: Request,
        within: Scoped,
        keep_requests: Injected[KeepRequests],
        show: Annotated[str, QueryParameter(max_length=10)] = "active",
    ) -> Template:
        if show not in ("active", "closed"):
            raise BadRequest(f"show is 'active' or 'closed', not {show!r}")
        return page(
            request,
            "keep_requests.html",
            rows=keep_requests.queue(within.borough, show),
            show=show,
            over=keep_requests.over_retention(within.borough),
            now=utc_now(),
            outcomes=OUTCOMES,
        )

    @get(
        "/{reference:str}",
        summary="One request to keep footage, and the clips it could match",
        guards=[user_with("information_manager")],
        scope=touches(in_path("keep_request", "reference")),
        sync_to_thread=True,
    )
    def one(
        self, request: Request, principal: Caller, keep_requests: Injected[KeepRequests], reference: ReferencePath
    ) -> Template:
        found, clips = keep_requests.request(reference)
        return page(request, "keep_request.html", r=found, clips=clips, outcomes=OUTCOMES, now=utc_now())

    @post(
        "/{reference:str}/narrow",
        summary="Keep only the chosen clips for a request",
        guards=[user_with("information_manager")],
        opt=FORM,
        scope=touches(in_path("keep_request", "reference")),
        sync_to_thread=True,
    )
    def narrow(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        keep_requests: Injected[KeepRequests],
        reference: ReferencePath,
    ) -> Redirect:
        clips = [str(c) for c in form.getall("clip", [])]
        if len(clips) > 2000:
            raise BadRequest("choose at most 2,000 clips")
        keep_requests.narrow(reference, clips, field(form, "note"), principal.name)
        return back(f"/keep-requests/{reference}", done="narrowed")

    @post(
        "/{reference:str}/close",
        summary="Close a request with its outcome",
        guards=[user_with("information_manager")],
        opt=FORM,
        scope=touches(in_path("keep_request", "reference")),
        sync_to_thread=True,
    )
    def close(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        keep_requests: Injected[KeepRequests],
        reference: ReferencePath,
    ) -> Redirect:
        keep_requests.close(reference, field(form, "outcome", 40), field(form, "note"), principal.name)
        return back(f"/keep-requests/{reference}", done="closed")

    @post(
        "/bulk-close",
        summary="Close several requests with one outcome",
        guards=[user_with("information_manager")],
        opt=FORM,
        scope=touches(in_form("keep_request", "reference")),
        sync_to_thread=True,
    )
    def bulk_close(
        self, principal: Caller, form: Injected[FormMultiDict], keep_requests: Injected[KeepRequests]
    ) -> Redirect:
        references = [form_text(r) for r in form.getall("reference", [])]
        if len(references) > MOST_CLOSED_AT_ONCE:
            raise BadRequest(f"close at most {MOST_CLOSED_AT_ONCE} requests at once")
        keep_requests.close_many(references, field(form, "outcome", 40), field(form, "note"), principal.name)
        return back("/keep-requests", done="closed_many")
