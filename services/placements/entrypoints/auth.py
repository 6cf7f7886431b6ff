"""The one FastAPI dependency that authorises every request (`access`), and the OpenAPI side of
it (the OAuth 2.0 security scheme `/docs` signs in with).

A route declares its rule, `openapi_extra={"x-apl-access": "<name>"}`; `access` reads it from the
matched route, so the name is written once. It then:

1. admits anyone for an anonymous rule (`public`, `supervisor-link`);
2. else requires a bearer token and verifies it (`container.verifier`: 401 for a missing,
   expired or forged token, 503 while the issuer's keys cannot be had);
3. gates by the caller's kind (403 for a student on a coordinator's route, an operator on any
   personal-data route, ...);
4. adds what the account is linked to (a student record, a company) when the token's claims do
   not say it (`handlers.link_account`: the first sign-in with a verified e-mail links it);
5. loads the facts of the resource the path names, if the rule needs them
   (`handlers.access_target`), and decides (`domain/policy.py`). A rule that needs facts of the
   body is decided by the route with them (`Access.permit`).

The route's unit of work carries the caller's actor (stamped on its events and in the audit
trail): `http.unit_of_work` depends on `access`, which FastAPI runs once per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Request, Security
from fastapi.security import OAuth2AuthorizationCodeBearer

from shared.auth import Forbidden, Principal, Unauthenticated
from shared.contracts.events import Actor

from .. import handlers
from ..domain import policy
from ..domain.commands import LinkAccount
from ..domain.rules import Party
from ..settings import PlacementsSettings

if TYPE_CHECKING:
    from ..bootstrap import Container

ACCESS_KEY = "x-apl-access"
SCHEME = "oidc"
SCOPES = {"openid": "Sign in (OpenID Connect)."}

bearer = OAuth2AuthorizationCodeBearer(
    # The issuer's endpoints are the settings'; `document_security` puts them in the document.
    authorizationUrl="/authorize",
    tokenUrl="/token",
    scheme_name=SCHEME,
    scopes=SCOPES,
    description="An access token of the configured OIDC issuer (audience `apl-api`).",
    auto_error=False,
)


def rule(name: str) -> dict[str, Any]:
    """A route's `openapi_extra`: the access rule it declares (`domain/policy.py`)."""
    return {ACCESS_KEY: name}


def rule_of(route: Any) -> policy.Rule | None:
    """The access rule a route declares (None: none, or a name the policy does not know)."""
    extra = getattr(route, "openapi_extra", None) or {}
    name = extra.get(ACCESS_KEY)
    return policy.RULES.get(name) if isinstance(name, str) else None


@dataclass
class Access:
    """What `access` decided for this request: the rule, the caller, the facts of the target."""

    rule: policy.Rule
    principal: Principal | None
    target: policy.Target = field(default_factory=policy.Target)
    decision: policy.Decision | None = None
    """None until decided (a rule with body facts: the route's `permit`)."""

    @property
    def decided(self) -> policy.Decision:
        """The decision (a route of a rule with request facts calls `permit` first)."""
        if self.decision is None:
            raise RuntimeError(f"rule {self.rule.name}: the route did not decide (permit)")
        return self.decision

    @property
    def actor(self) -> Actor | None:
        return self.principal.actor() if self.principal is not None else None

    def permit(
        self,
        *,
        region: str | None = None,
        regions: frozenset[str] | None = None,
        company_id: str | None = None,
        moves_to: str | None = None,
        by: Party | None = None,
        exists: bool | None = None,
    ) -> policy.Decision:
        """Decide again with the facts of the request (body, query) added to the target's;
        `Forbidden` if refused."""
        t = self.target
        target = replace(
            t,
            region=region if region is not None else t.region,
            regions=regions if regions is not None else t.regions,
            company_id=company_id if company_id is not None else t.company_id,
            moves_to=moves_to if moves_to is not None else t.moves_to,
            by=by if by is not None else t.by,
            exists=exists if exists is not None else t.exists,
        )
        self.decision = policy.decide(self.rule, self.principal, target)
        return self.decision


async def access(request: Request, token: Annotated[str | None, Security(bearer)] = None) -> Access:
    """Authenticate and authorise the request by its route's rule (see the module)."""
    rule = rule_of(request.scope.get("route"))
    if rule is None:  # fail closed; the authorisation matrix test names the route
        raise Forbidden("this route declares no access rule")
    if rule.anonymous:
        return Access(rule, None, decision=policy.ALLOW)
    if not token:
        raise Unauthenticated("a bearer token is required", missing=True)
    container: Container = request.app.state.container
    return await authorise(request, rule, await container.verifier.verify(token))


async def authorise(request: Request, rule: policy.Rule, principal: Principal | None) -> Access:
    """Steps 3 to 5 for a verified caller (the API's bearer token, or a web page's session):
    gate, link the account, load the facts of the target and decide."""
    if rule.anonymous:
        return Access(rule, principal, decision=policy.ALLOW)
    container: Container = request.app.state.container
    policy.gate(rule, principal)
    if principal is not None:
        principal = await _linked(principal, container)
    target = policy.Target()
    if rule.resource is not None:
        key = _key(rule.resource, request.path_params)
        target = await handlers.access_target(rule.resource, key, container.uow())
    result = Access(rule, principal, target)
    if not rule.body:
        result.decision = policy.decide(rule, principal, target)
    return result


def _key(resource: policy.Resource, path: dict[str, Any]) -> str:
    name = "region" if resource == "region" else f"{resource}_id"
    value = path.get(name)
    if value is None:
        raise RuntimeError(f"a {resource} rule on a route without the path parameter {name}")
    return str(value)


async def _linked(principal: Principal, container: Container) -> Principal:
    """The principal with the student (or teacher) record and company its account is linked
    to, where its claims name none."""
    participant = principal.has("student") or principal.has("teacher")
    student = participant and principal.student_id is None
    company = principal.has("company") and principal.company_id is None
    if not (student or company):
        return principal
    email = principal.email if principal.email_verified else None
    command = LinkAccount(principal.subject, email, student=student, company=company)
    links = await handlers.link_account(command, container.uow())
    return replace(
        principal,
        student_id=principal.student_id or links.student_id,
        company_id=principal.company_id or links.company_id,
    )


# ---------------------------------------------------------------------------------- OpenAPI


def swagger_oauth(settings: PlacementsSettings) -> dict[str, Any]:
    """`/docs` signs in as the public client with the authorization code flow and PKCE."""
    return {
        "clientId": settings.docs_client_id,
        "usePkceWithAuthorizationCodeGrant": True,
        "scopes": " ".join(SCOPES),
    }


def document_security(document: dict[str, Any], settings: PlacementsSettings) -> dict[str, Any]:
    """Put the issuer's endpoints into the security scheme, and drop the security requirement
    of the operations whose rule admits anonymous callers."""
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[SCHEME] = {
        "type": "oauth2",
        "description": (
            "Sign in with the configured OIDC issuer (authorization code with PKCE; "
            f"`/docs` uses the public client `{settings.docs_client_id}`). Scripts send "
            "`Authorization: Bearer <access token>`."
        ),
        "flows": {
            "authorizationCode": {
                "authorizationUrl": settings.authorization_url,
                "tokenUrl": settings.token_url,
                "scopes": SCOPES,
            }
        },
    }
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            rule = policy.RULES.get(operation.get(ACCESS_KEY, ""))
            if rule is not None and rule.anonymous:
                operation.pop("security", None)
    return document
