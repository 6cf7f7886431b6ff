"""The words of the contract that several models and services share, declared once."""

from __future__ import annotations

from typing import Literal

Language = Literal["sv", "fi", "en"]
"""A notice's and a supervisor's language."""

Party = Literal["student", "company"]
"""The two sides of a match, each of which accepts or declines it."""

Channel = Literal["email", "webhook"]
"""How a company's supervisors are told."""

Participant = Literal["student", "teacher"]
"""Who a profile, a placement and a round are for: vocational students on a work placement (APL),
or teachers on a working-life period at a company. Rounds never mix the two."""
