"""The rows of the page access matrix (test_page_access.py), a module per role's pages.

A cell per caller, in the order of `CALLERS` (tests/inmemory/placements/test_authorisation.py):
anonymous, student own, student other, company own, company other, coordinator in (SE-AB),
coordinator out (SE-O, SE-M), operator, service. The world: student s-own (SE-AB) and s-other
(SE-O), placements p-own (c-own, SE-AB) and p-other (c-other, SE-O), match OWN_MATCH (s-own at
p-own), OTHER_MATCH, round OWN_ROUND (SE-AB). `303`: sent on (to sign in, or onwards); `403`:
refused with an error page; `ok`: anything else but a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Visit:
    method: str
    path: str
    form: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PageRow:
    route: tuple[str, str]
    visit: Visit
    expect: str

    @property
    def expected(self) -> dict[str, str]:
        from tests.inmemory.placements.test_authorisation import CALLERS

        return dict(zip(CALLERS, self.expect.split(), strict=True))


#          anon st-own st-oth co-own co-oth crd-in crd-out oper svc
OPEN = "ok ok ok ok ok ok ok ok ok"
OPERATOR = "303 403 403 403 403 403 403 ok 403"

from . import company, coordinator, readiness, student, teacher  # noqa: E402  # the rows use the classes above

__all__ = [
    "OPEN",
    "OPERATOR",
    "PageRow",
    "Visit",
    "company",
    "coordinator",
    "readiness",
    "student",
    "teacher",
]
