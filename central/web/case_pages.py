"""Dashboard: cases and their disclosure (packages for prosecutors, share links for partners),
and what a partner sees through a share link.

Cases span boroughs, so their pages are force-wide, as case holds are. A new share link's
address is shown once, on the page the form answers (never in a redirect's URL, which
browsers keep in their history): central keeps only its hash.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from central.access.auth import Caller, user_with
from central.access.scope import FORCE_WIDE, no_borough
from central.core.providers import Injected
from central.evidence.disclosure import CasePath, DisclosureService, package_response
from central.evidence.shares import ShareRequest, ShareService
from central.web.dashboard import FORM, DashboardPages, back, field, page
from fleet.bundle import key_fingerprint
from fleet.clock import utc_now
from fleet.errors import BadRequest

TokenPath = Annotated[str, PathParameter(min_length=20, max_length=100, description="the link's secret")]
SHARE_DAYS = (1, 7, 14, 30)
"""The lifetimes the page offers (each capped by ``[disclosure] share_max_days``)."""


def _required(form: FormMultiDict, key: str, what: str) -> str:
    value = field(form, key)
    if not value:
        raise BadRequest(f"say {what}")
    return value


class CasePages(DashboardPages):
    path = "/cases"

    @get("/", summary="Cases", guards=[user_with("supervisor")], scope=FORCE_WIDE, sync_to_thread=True)
    def cases_page(self, request: Request, disclosure: Injected[DisclosureService]) -> Template:
        return page(request, "cases.html", cases=disclosure.cases())

    @get(
        "/{case_ref:str}",
        summary="A case: its clips, disclosure and share links",
        guards=[user_with("supervisor")],
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def case_page(
        self,
        request: Request,
        disclosure: Injected[DisclosureService],
        shares: Injected[ShareService],
        case_ref: CasePath,
    ) -> Template:
        return self._page(request, disclosure, shares, case_ref)

    def _page(
        self,
        request: Request,
        disclosure: Injected[DisclosureService],
        shares: Injected[ShareService],
        case_ref: str,
        new_link: str | None = None,
        status: int = 200,
    ) -> Template:
        signer = disclosure.signer()
        template = page(
            request,
            "case.html",
            case=disclosure.case(case_ref),
            shares=shares.list(case_ref),
            new_link=new_link,
            share_days=[d for d in SHARE_DAYS if d <= disclosure.settings.disclosure.share_max_days],
            public_key=signer.public_key,
            fingerprint=key_fingerprint(signer.public_key) if signer.public_key else None,
        )
        template.status_code = status
        return template

    @post(
        "/{case_ref:str}/disclosure",
        summary="Export the case's disclosure package",
        guards=[user_with("supervisor")],
        opt=FORM,
        scope=FORCE_WIDE,
        status_code=200,
        sync_to_thread=True,
    )
    def export(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        disclosure: Injected[DisclosureService],
        case_ref: CasePath,
    ) -> Response:
        prepared_for = _required(form, "prepared_for", "who the package is for")
        reason = _required(form, "reason", "why it is disclosed (a reason goes into each clip's custody)")
        return package_response(disclosure.export(case_ref, principal.name, prepared_for, reason), case_ref)

    @post(
        "/{case_ref:str}/shares",
        summary="Make a share link",
        guards=[user_with("supervisor")],
        opt=FORM,
        scope=FORCE_WIDE,
        status_code=201,
        sync_to_thread=True,
    )
    def share(
        self,
        request: Request,
        principal: Caller,
        form: Injected[FormMultiDict],
        disclosure: Injected[DisclosureService],
        shares: Injected[ShareService],
        case_ref: CasePath,
    ) -> Template:
        recipient = _required(form, "recipient", "who receives the link")
        try:
            days = int(field(form, "days", 4))
        except ValueError:
            raise BadRequest("days: a whole number of days") from None
        if days not in SHARE_DAYS:
            raise BadRequest(f"days: one of {', '.join(map(str, SHARE_DAYS))}")
        created = shares.create(
            case_ref, ShareRequest(recipient=recipient, expires_at=utc_now() + timedelta(days=days)), principal.name
        )
        link = f"{str(request.base_url).rstrip('/')}{created.path}"
        return self._page(request, disclosure, shares, case_ref, new_link=link, status=201)

    @post(
        "/{case_ref:str}/shares/{share_id:int}/withdraw",
        summary="Withdraw a share link",
        guards=[user_with("supervisor")],
        opt=FORM,
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def withdraw(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        shares: Injected[ShareService],
        case_ref: CasePath,
        share_id: Annotated[int, PathParameter(ge=1, le=2**62)],
    ) -> Redirect:
        shares.withdraw(case_ref, share_id, principal.name)
        return back(f"/cases/{case_ref}", done="withdrawn")


class SharedPages(DashboardPages):
    """What a partner sees through a link: no account, no session, nothing beyond the case."""

    path = "/shared"

    @get(
        "/{token:str}",
        summary="A case's clips through a share link",
        scope=no_borough("a share link: its secret decides, and it opens one case's clips only"),
        sync_to_thread=True,
    )
    def case_page(self, shares: Injected[ShareService], token: TokenPath) -> Template:
        share, case = shares.opened(token)
        return Template(
            template_name="shared.html",
            context={"share": share, "case": case, "token": token, "me": None, "nav": [], "here": ""},
        )

    @get(
        "/{token:str}/clips/{clip_id:str}",
        summary="One clip's bytes through a share link",
        scope=no_borough("a share link: its secret decides, and it opens one case's clips only"),
        sync_to_thread=True,
    )
    def clip(
        self,
        request: Request,
        shares: Injected[ShareService],
        token: TokenPath,
        clip_id: Annotated[str, PathParameter(min_length=1, max_length=64)],
    ) -> Response:
        return shares.download(token, clip_id, request.headers.get("range"))
