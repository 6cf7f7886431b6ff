"""Who may do what: every access rule of the placements API, in one place. Pure (no FastAPI, no
I/O): a rule takes the caller (`shared.auth.Principal`) and the facts of what the request acts on
(`Target`) and answers a `Decision` or raises `Forbidden`. docs/product.md "Who may do what" is
the table this module makes true.

Every route of the app declares its rule (`openapi_extra={"x-apl-access": "<name>"}`); one
dependency (`entrypoints/auth.py`) authenticates the caller, gates by role, loads the facts the
rule needs (whose placement? which region?) and decides with `decide`. A rule that needs facts of
the request body (a posted placement's company and region) is decided again by the route with
them (`Access.permit`). The authorisation matrix test (tests/inmemory/placements/
test_authorisation.py) fails for a route without a rule or with a name not in `RULES`.

Kinds of caller: `anonymous` (no token), the realm roles `student`, `teacher`, `company`,
`coordinator`, `operator`, and `service` (a client-credentials token: none of the user roles). A
principal with several roles may do what any of them may. A teacher is a participant like a
student (their record's id is their token's `student_id`), acting only on a teacher's record and
seeing only working-life periods for teachers; a student only on a student's, seeing placements
for students.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from shared.auth import Forbidden, Principal
from shared.contracts.vocabulary import Participant

from .rules import Party

Kind = Literal["anonymous", "student", "teacher", "company", "coordinator", "operator", "service"]
KINDS: Final[tuple[Kind, ...]] = (
    "anonymous",
    "student",
    "teacher",
    "company",
    "coordinator",
    "operator",
    "service",
)
Resource = Literal["placement", "student", "teacher", "match", "round", "company", "region"]
"""What a rule loads facts of, named by the route's path parameter `<resource>_id` (or
`region`)."""

NOTICES_SCOPE: Final = "notices:read"


@dataclass(frozen=True)
class Target:
    """What a request acts on, as far as a rule needs to know. Unknown facts are None."""

    exists: bool = True
    """False: the named resource does not exist; a caller who may act on such resources at all
    passes, and the handler answers 404."""
    region: str | None = None
    regions: frozenset[str] = frozenset()
    """Several regions at once: a batch's items, the regions a company has placements in."""
    company_id: str | None = None
    """The company the resource belongs to (a placement's, a match's placement's)."""
    student_id: str | None = None
    moves_to: str | None = None
    """A PATCH's new `company_id` for a placement."""
    by: Party | None = None
    """Which party an answer to a match is given as."""
    participant: Participant | None = None
    """The participant record's (or a match's) kind of person: `student` or `teacher`."""
    kind: Participant | None = None
    """A placement's kind: for `student`s, or a working-life period for `teacher`s."""


@dataclass(frozen=True)
class Decision:
    """A permission, and what it narrows: the route renders and queries accordingly."""

    redact: bool = False
    """Hide the placement's supervisor, the company's ranking and its own channel (a
    student's view: no supervisor contact before confirmation, no other students)."""
    company_id: str | None = None
    """A listing narrowed to this company."""
    region: str | None = None
    """A listing narrowed to this region."""
    open_only: bool = False
    """A listing of open placements only."""
    kind: Participant | None = None
    """A listing narrowed to placements of this kind (a student's: for students; a
    teacher's: working-life periods)."""


ALLOW: Final = Decision()

Decide = Callable[[Principal | None, Target], Decision]


@dataclass(frozen=True)
class Rule:
    name: str
    summary: str
    kinds: frozenset[Kind]
    """Who passes the gate at all; the others get 401 (anonymous) or 403 at once."""
    decide: Decide
    resource: Resource | None = None
    body: bool = False
    """The decision needs facts of the request (its body, its query): the dependency only
    gates, the route decides with them."""

    @property
    def anonymous(self) -> bool:
        return "anonymous" in self.kinds


def kinds_of(who: Principal | None) -> frozenset[Kind]:
    if who is None:
        return frozenset({"anonymous"})
    kinds: set[Kind] = {k for k in KINDS if k in who.roles}
    if who.is_service:
        kinds.add("service")
    return frozenset(kinds)


def gate(rule: Rule, who: Principal | None) -> None:
    """Raise `Forbidden` unless the caller is of a kind the rule admits (callers without a token
    are the entrypoint's 401, before this)."""
    if not kinds_of(who) & rule.kinds:
        allowed = ", ".join(k for k in KINDS if k in rule.kinds)
        raise Forbidden(f"{rule.summary} is for {allowed} only")


def decide(rule: Rule, who: Principal | None, target: Target) -> Decision:
    """The rule's decision on `target` (`Forbidden` if refused)."""
    gate(rule, who)
    return rule.decide(who, target)


# ------------------------------------------------------------------------------- helpers


def _user(who: Principal | None) -> Principal:
    if who is None:  # the gate admits no anonymous caller to these rules
        raise Forbidden("a signed-in user is required")
    return who


def _coordinates(who: Principal, *regions: str | None) -> bool:
    """A coordinator of every one of `regions` (at least one, none unknown)."""
    wanted = [r for r in regions if r is not None]
    return (
        who.has("coordinator")
        and bool(wanted)
        and len(wanted) == len(regions)
        and set(wanted) <= who.regions
    )


def _coordinates_any(who: Principal, regions: frozenset[str]) -> bool:
    return who.has("coordinator") and bool(regions & who.regions)


def _of_company(who: Principal, company_id: str | None) -> bool:
    return who.has("company") and who.company_id is not None and company_id == who.company_id


def _is_student(
    who: Principal, student_id: str | None, participant: Participant | None = None
) -> bool:
    """The record's own person: a student (role `student`) or a teacher (role `teacher`) whose
    id claim names it; when the record's kind is known, the role must be of that kind."""
    if who.student_id is None or student_id != who.student_id:
        return False
    if participant == "teacher":
        return who.has("teacher")
    if participant == "student":
        return who.has("student")
    return who.has("student") or who.has("teacher")


def _participant_kind(who: Principal) -> Participant | None:
    """The kind of placement a student (`student`) or a teacher (`teacher`) may see."""
    if who.has("student"):
        return "student"
    if who.has("teacher"):
        return "teacher"
    return None


def _refuse(who: Principal, what: str) -> Forbidden:
    """Why the caller may not: the first of their kinds that could have, with its reason."""
    if who.has("coordinator"):
        return Forbidden(f"{what}: outside your regions ({', '.join(sorted(who.regions))})")
    if who.has("company"):
        if who.company_id is None:
            return Forbidden(f"{what}: your account is not linked to a company")
        return Forbidden(f"{what}: it is not your company's")
    if who.has("student") or who.has("teacher"):
        if who.student_id is None:
            record = "a teacher" if who.has("teacher") else "a student"
            return Forbidden(f"{what}: your account is not linked to {record} record")
        return Forbidden(f"{what}: it is not yours")
    return Forbidden(f"{what}: not allowed")


# --------------------------------------------------------------------------------- rules


def _anyone(who: Principal | None, target: Target) -> Decision:
    return ALLOW


def _placement_create(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if _coordinates(user, t.region) or _of_company(user, t.company_id):
        return ALLOW
    raise _refuse(user, f"posting a placement of {t.company_id} in {t.region}")


def _regions_import(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if _coordinates(user, *sorted(t.regions)):
        return ALLOW
    raise _refuse(user, f"importing into {', '.join(sorted(t.regions)) or 'no region'}")


def _placement_list(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if user.has("coordinator"):
        if t.region is None and len(user.regions) == 1:
            return Decision(region=next(iter(user.regions)))
        if t.region is not None and t.region in user.regions:
            return Decision(region=t.region)
    own = user.company_id
    if user.has("company") and own is not None and t.company_id in (None, own):
        return Decision(company_id=own)
    own_kind = _participant_kind(user)
    if own_kind is not None:
        return Decision(redact=True, open_only=True, kind=own_kind)
    if user.has("coordinator") and t.region is None:
        raise Forbidden("listing placements: name one of your regions (region=...)")
    raise _refuse(user, "listing these placements")


def _placement_read(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if not t.exists or _coordinates(user, t.region) or _of_company(user, t.company_id):
        return ALLOW
    own_kind = _participant_kind(user)
    if own_kind is not None and t.kind in (None, own_kind):
        return Decision(redact=True)
    if own_kind == "teacher":
        raise Forbidden("this placement: a teacher sees working-life periods for teachers only")
    if own_kind == "student":
        raise Forbidden("this placement: it is a working-life period for teachers")
    raise _refuse(user, "this placement")


def _placement_manage(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if not t.exists or _coordinates(user, t.region):
        return ALLOW
    if _of_company(user, t.company_id) and t.moves_to in (None, user.company_id):
        return ALLOW
    if _of_company(user, t.company_id):
        raise Forbidden("a placement can be moved to another company by a coordinator only")
    raise _refuse(user, "changing this placement")


def _placement_matches(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if not t.exists or _coordinates(user, t.region) or _of_company(user, t.company_id):
        return ALLOW
    raise _refuse(user, "the matches at this placement")


def _company_channel(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if _of_company(user, t.company_id) or _coordinates_any(user, t.regions):
        return ALLOW
    raise _refuse(user, f"the notification channel of {t.company_id}")


def _company_invite(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if _coordinates_any(user, t.regions):
        return ALLOW
    raise Forbidden(
        f"inviting staff of {t.company_id}: the company has no placement in your regions"
    )


def _student_register(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if _coordinates(user, t.region):
        return ALLOW
    raise _refuse(user, f"registering a student in {t.region}")


def _student_own(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if _is_student(user, t.student_id, t.participant):
        return ALLOW
    if user.has("coordinator") and (not t.exists or _coordinates(user, t.region)):
        return ALLOW
    raise _refuse(user, f"student {t.student_id}")


def _match_answer(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if not t.exists or _coordinates(user, t.region):
        return ALLOW
    if _is_student(user, t.student_id, t.participant) and t.by in (None, "student"):
        return ALLOW
    if _of_company(user, t.company_id) and t.by in (None, "company"):
        return ALLOW
    if _is_student(user, t.student_id, t.participant) or _of_company(user, t.company_id):
        raise Forbidden(f"you may not answer this match as the {t.by}")
    raise _refuse(user, "this match")


def _coordinator_region(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if (not t.exists and user.has("coordinator")) or _coordinates(user, t.region):
        return ALLOW
    raise _refuse(user, f"region {t.region}")


def _round_list(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if user.has("coordinator"):
        if t.region is None and len(user.regions) == 1:
            return Decision(region=next(iter(user.regions)))
        if t.region is not None and t.region in user.regions:
            return Decision(region=t.region)
        if t.region is None:
            raise Forbidden("listing rounds: name one of your regions (region=...)")
    raise _refuse(user, f"the rounds of {t.region}")


def _coordinator_regions(who: Principal | None, t: Target) -> Decision:
    """A coordinator of every region the request names (facts of the body or query; a named
    resource that does not exist: any coordinator, and the handler answers 404)."""
    user = _user(who)
    if user.has("coordinator") and (not t.exists or _coordinates(user, *sorted(t.regions))):
        return ALLOW
    raise _refuse(user, f"region {', '.join(sorted(t.regions)) or '?'}")


def _notices(who: Principal | None, t: Target) -> Decision:
    user = _user(who)
    if NOTICES_SCOPE in user.scopes:
        return ALLOW
    raise Forbidden(f"the token's scope has no {NOTICES_SCOPE}")


def _rule(
    name: str,
    summary: str,
    kinds: str,
    decide: Decide,
    resource: Resource | None = None,
    *,
    body: bool = False,
) -> Rule:
    named = frozenset(k for k in KINDS if k in kinds.split())
    return Rule(name, summary, named, decide, resource, body)


_STAFF = "company coordinator"
_PEOPLE = "student teacher coordinator"
_USERS = "student teacher company coordinator operator"

RULES: Final[dict[str, Rule]] = {
    r.name: r
    for r in (
        _rule("public", "health and documents", " ".join(KINDS), _anyone),
        _rule("supervisor-link", "a supervisor's signed action link", " ".join(KINDS), _anyone),
        _rule("signed-in", "a signed-in person's start page", _USERS, _anyone),
        _rule("operations", "the operations overview (no personal data)", "operator", _anyone),
        _rule("placement-create", "posting a placement", _STAFF, _placement_create, body=True),
        _rule(
            "placement-import", "importing placements", "coordinator", _regions_import, body=True
        ),
        _rule(
            "placement-list",
            "listing placements",
            f"{_STAFF} student teacher",
            _placement_list,
            body=True,
        ),
        _rule(
            "placement-read",
            "reading a placement",
            f"{_STAFF} student teacher",
            _placement_read,
            "placement",
        ),
        _rule("placement-manage", "changing a placement", _STAFF, _placement_manage, "placement"),
        _rule(
            "placement-matches",
            "the matches at a placement",
            _STAFF,
            _placement_matches,
            "placement",
        ),
        _rule(
            "company-channel",
            "a company's notification channel",
            _STAFF,
            _company_channel,
            "company",
        ),
        _rule(
            "company-invite", "inviting company staff", "coordinator", _company_invite, "company"
        ),
        _rule(
            "student-register",
            "registering a student",
            "coordinator",
            _student_register,
            body=True,
        ),
        _rule("student-import", "importing students", "coordinator", _regions_import, body=True),
        _rule("student-self", "a student's own record", _PEOPLE, _student_own, "student"),
        _rule(
            "teacher-self",
            "a teacher's own profile",
            "teacher coordinator",
            _student_own,
            "teacher",
        ),
        _rule(
            "match-answer",
            "answering a match",
            f"{_PEOPLE} company",
            _match_answer,
            "match",
        ),
        _rule("round-request", "requesting a round", "coordinator", _coordinator_region, body=True),
        _rule("round-read", "reading a round", "coordinator", _coordinator_region, "round"),
        _rule("round-list", "listing rounds", "coordinator", _round_list, body=True),
        _rule(
            "round-compare",
            "comparing rounds",
            "coordinator",
            _coordinator_regions,
            body=True,
        ),
        _rule(
            "match-assign",
            "assigning a student by hand",
            "coordinator",
            _coordinator_regions,
            body=True,
        ),
        _rule(
            "coordinator-region",
            "a region's records (audit trail, vacancies, supplementary rounds)",
            "coordinator",
            _coordinator_region,
            "region",
        ),
        _rule("notice-context", "the notice context", "service", _notices),
    )
}
"""Every rule, by the name routes declare in `x-apl-access`."""


def rule(name: str) -> Rule:
    """The rule named `name` (`KeyError` for an unknown name: a route declaring one is a bug the
    authorisation matrix test catches)."""
    return RULES[name]
