"""A seeded generator of realistic matching rounds, for the benchmarks, the tests and the demo
(a development tool: the engine and the services never import it).

The shape follows the national rounds the product is built for: 13 regions of unequal size,
eight vocational programmes, companies whose popularity follows a heavy tail (a few employers
everyone wants), about 1.25 slots per student, five ranked choices per student (mostly in the
student's own region, some elsewhere), and hard constraints that bite: programmes a placement
does not accept, required skills, availability periods and travel distance. A small share of
preferences name withdrawn placements, and some placements rank the students who chose them.

Same arguments, same round: everything is drawn from one `numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from shared.contracts.profiles import GeoPoint, PlacementOffer, StudentProfile

# (code, centre latitude, centre longitude, relative size)
REGIONS: tuple[tuple[str, float, float, float], ...] = (
    ("SE-AB", 59.33, 18.07, 9.0),
    ("SE-O", 57.71, 11.97, 7.0),
    ("SE-M", 55.60, 13.00, 6.0),
    ("SE-E", 58.41, 15.62, 2.5),
    ("SE-C", 59.86, 17.64, 2.0),
    ("SE-F", 57.78, 14.16, 2.0),
    ("SE-T", 59.27, 15.21, 1.7),
    ("SE-U", 59.61, 16.55, 1.5),
    ("SE-D", 58.75, 17.01, 1.4),
    ("SE-X", 60.67, 17.14, 1.4),
    ("SE-Y", 62.39, 17.31, 1.2),
    ("SE-AC", 63.83, 20.26, 1.3),
    ("SE-BD", 65.58, 22.15, 1.2),
)

PROGRAMMES: tuple[str, ...] = ("EE", "IN", "FT", "BA", "VF", "HA", "RL", "TE")

_SKILLS: dict[str, tuple[str, ...]] = {
    "EE": ("electrical-safety", "wiring", "plc", "solar", "measurement"),
    "IN": ("welding", "cnc", "cad", "assembly", "quality"),
    "FT": ("diesel", "hydraulics", "diagnostics", "forklift", "truck-licence"),
    "BA": ("carpentry", "concrete", "scaffolding", "surveying", "roofing"),
    "VF": ("plumbing", "ventilation", "heat-pumps", "property-care", "soldering"),
    "HA": ("retail", "logistics", "customer-service", "cash-handling", "stock"),
    "RL": ("cooking", "hygiene", "bakery", "catering", "allergens"),
    "TE": ("programming", "cad", "electronics", "automation", "quality"),
}
_GENERIC_SKILLS: tuple[str, ...] = ("first-aid", "driving-licence", "english", "finnish")

_TERM_START = date(2027, 1, 11)


@dataclass(frozen=True, slots=True)
class Round:
    """A generated round: the inputs of one `solve` call."""

    students: tuple[StudentProfile, ...]
    placements: tuple[PlacementOffer, ...]


def _preference_lists(
    prefs: npt.NDArray[np.int64],
    n_choices: npt.NDArray[np.int64],
    withdrawn: npt.NDArray[np.bool_],
    pl_ids: list[str],
) -> tuple[list[list[str]], list[list[int]]]:
    """(each student's preference ids, the students choosing each placement) from the drawn
    placement indices: the first `n_choices[s]` distinct draws of student s, a withdrawn one
    naming a placement that does not exist."""
    pref_lists: list[list[str]] = []
    chosen_by: list[list[int]] = [[] for _ in pl_ids]
    n_choices_l = n_choices.tolist()
    withdrawn_l = withdrawn.tolist()
    for s, draws in enumerate(prefs.tolist()):
        seen: list[int] = []
        for p in draws:
            if p not in seen:
                seen.append(p)
                if len(seen) == n_choices_l[s]:
                    break
        ids: list[str] = []
        for k, p in enumerate(seen):
            if withdrawn_l[s][k]:
                ids.append(f"p-withdrawn-{s:06d}-{k}")
            else:
                ids.append(pl_ids[p])
                chosen_by[p].append(s)
        pref_lists.append(ids)
    return pref_lists, chosen_by


def generate_round(
    n_students: int,
    *,
    seed: int = 0,
    slots_per_student: float = 1.25,
    choices: int = 5,
    cross_region_share: float = 0.12,
    withdrawn_share: float = 0.01,
    ranking_share: float = 0.2,
) -> Round:
    """Generate a realistic round with `n_students` students; deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    n_regions = len(REGIONS)
    region_weight = np.array([r[3] for r in REGIONS])
    region_weight /= region_weight.sum()
    centre_lat = np.array([r[1] for r in REGIONS])
    centre_lon = np.array([r[2] for r in REGIONS])
    n_prog = len(PROGRAMMES)
    prog_weight = np.array([1.3, 1.2, 1.0, 1.4, 0.8, 1.0, 0.9, 1.1])
    prog_weight /= prog_weight.sum()

    # Companies: heavy-tailed popularity; each company offers one to three placements.
    target_slots = max(1, round(n_students * slots_per_student))
    n_companies = max(1, round(n_students * slots_per_student / 3.2))
    comp_region = rng.choice(n_regions, size=n_companies, p=region_weight)
    comp_pop = rng.pareto(1.2, size=n_companies) + 0.05
    comp_prog = rng.choice(n_prog, size=n_companies, p=prog_weight)
    comp_lat = centre_lat[comp_region] + rng.normal(0.0, 0.2, n_companies)
    comp_lon = centre_lon[comp_region] + rng.normal(0.0, 0.35, n_companies)
    n_per_comp = 1 + rng.binomial(2, 0.35, size=n_companies)
    pl_comp = np.repeat(np.arange(n_companies), n_per_comp)
    n_pl = len(pl_comp)
    # Popular companies take more students, but never many more than a handful per placement.
    raw_cap = 1.0 + rng.exponential(1.2, n_pl) * np.sqrt(np.minimum(comp_pop[pl_comp], 25.0))
    cap = np.maximum(1, np.round(raw_cap * target_slots / raw_cap.sum())).astype(np.int64)
    pl_pop = comp_pop[pl_comp] * rng.uniform(0.6, 1.4, n_pl)
    pl_region = comp_region[pl_comp]
    pl_prog = comp_prog[pl_comp]
    pl_lat = np.clip(comp_lat[pl_comp] + rng.normal(0.0, 0.02, n_pl), -90, 90)
    pl_lon = np.clip(comp_lon[pl_comp] + rng.normal(0.0, 0.02, n_pl), -180, 180)
    pl_start_week = rng.choice([0, 0, 0, 1, 2, 4], size=n_pl)
    pl_weeks = rng.choice([6, 8, 8, 10], size=n_pl)
    open_to_all = rng.random(n_pl) < 0.15
    second_prog = rng.random(n_pl) < 0.3
    other_prog = rng.integers(0, n_prog, n_pl)
    n_required = np.where(open_to_all, 0, rng.choice([0, 0, 1, 1, 2], size=n_pl))

    # Students.
    st_region = rng.choice(n_regions, size=n_students, p=region_weight)
    st_prog = rng.choice(n_prog, size=n_students, p=prog_weight)
    st_lat = np.clip(centre_lat[st_region] + rng.normal(0.0, 0.2, n_students), -90, 90)
    st_lon = np.clip(centre_lon[st_region] + rng.normal(0.0, 0.35, n_students), -180, 180)
    st_travel = rng.choice([40.0, 60.0, 90.0, 150.0, -1.0], size=n_students)
    st_prio = rng.choice([0, 1, 2], size=n_students, p=[0.9, 0.08, 0.02])
    st_narrow = rng.random(n_students) < 0.15
    st_from_week = np.where(st_narrow, rng.integers(0, 3, n_students), 0)
    st_to_week = np.where(st_narrow, rng.integers(6, 10, n_students), 14)

    # Preferences: drawn by popularity within (region, programme) groups, with some choices in
    # other regions and some in placements that do not accept the student's programme.
    accepts = np.zeros((n_pl, n_prog), dtype=bool)
    accepts[np.arange(n_pl), pl_prog] = True
    accepts[np.arange(n_pl)[second_prog], other_prog[second_prog]] = True
    accepts[open_to_all] = True
    draws = 3 * choices
    prefs = np.full((n_students, draws), -1, dtype=np.int64)
    for g_region in range(n_regions):
        in_region = pl_region == g_region
        for g_prog in range(n_prog):
            who = np.flatnonzero((st_region == g_region) & (st_prog == g_prog))
            if len(who) == 0:
                continue
            weight = pl_pop * np.where(accepts[:, g_prog], 1.0, 0.02)
            cross = cross_region_share * max(int(in_region.sum()), 1) / n_pl
            weight = weight * np.where(in_region, 1.0, cross)
            weight /= weight.sum()
            prefs[who] = rng.choice(n_pl, size=(len(who), draws), p=weight)
    n_choices = np.minimum(choices, 1 + rng.binomial(choices - 1, 0.92, n_students))
    withdrawn = rng.random((n_students, choices)) < withdrawn_share

    pl_ids = [f"p-{i:06d}" for i in range(n_pl)]
    st_ids = [f"s-{i:06d}" for i in range(n_students)]
    pref_lists, chosen_by = _preference_lists(prefs, n_choices, withdrawn, pl_ids)

    # Skills: students have some of their programme's skills and some generic ones; a
    # placement requires skills of its own programme. Subsets are drawn as the k smallest of
    # random keys, so the whole draw is vectorised.
    pool_size = len(_SKILLS[PROGRAMMES[0]])
    st_keys = rng.random((n_students, pool_size)).argsort(axis=1).argsort(axis=1)
    st_has = st_keys < rng.integers(3, pool_size + 1, n_students)[:, None]
    st_generic = np.where(
        rng.random(n_students) < 0.4, rng.integers(0, len(_GENERIC_SKILLS), n_students), -1
    )
    pl_keys = rng.random((n_pl, pool_size)).argsort(axis=1).argsort(axis=1)
    pl_needs = pl_keys < n_required[:, None]
    ranked = rng.random(n_pl) < ranking_share
    rank_seed = rng.integers(0, 2**31, n_pl)

    skills_of = [_SKILLS[p] for p in PROGRAMMES]
    st_prog_l = st_prog.tolist()
    st_region_l = st_region.tolist()
    st_lat_l, st_lon_l = st_lat.tolist(), st_lon.tolist()
    st_travel_l, st_prio_l = st_travel.tolist(), st_prio.tolist()
    st_from_l, st_to_l = st_from_week.tolist(), st_to_week.tolist()
    st_has_l, st_generic_l = st_has.tolist(), st_generic.tolist()
    students: list[StudentProfile] = []
    for s in range(n_students):
        pool = skills_of[st_prog_l[s]]
        picked = [pool[i] for i in range(pool_size) if st_has_l[s][i]]
        if st_generic_l[s] >= 0:
            picked.append(_GENERIC_SKILLS[st_generic_l[s]])
        travel = st_travel_l[s]
        students.append(
            StudentProfile(
                student_id=st_ids[s],
                region=REGIONS[st_region_l[s]][0],
                programme=PROGRAMMES[st_prog_l[s]],
                skills=tuple(picked),
                preferences=tuple(pref_lists[s]),
                available_from=_TERM_START + timedelta(weeks=st_from_l[s]),
                available_to=_TERM_START + timedelta(weeks=st_to_l[s], days=-3),
                home=GeoPoint(lat=st_lat_l[s], lon=st_lon_l[s]),
                max_travel_km=travel if travel > 0 else None,
                priority=st_prio_l[s],
            )
        )

    accepts_l = accepts.tolist()
    pl_prog_l, pl_region_l, pl_comp_l = pl_prog.tolist(), pl_region.tolist(), pl_comp.tolist()
    cap_l, open_l = cap.tolist(), open_to_all.tolist()
    pl_lat_l, pl_lon_l = pl_lat.tolist(), pl_lon.tolist()
    start_l, weeks_l = pl_start_week.tolist(), pl_weeks.tolist()
    needs_l, ranked_l, rank_seed_l = pl_needs.tolist(), ranked.tolist(), rank_seed.tolist()
    placements: list[PlacementOffer] = []
    for p in range(n_pl):
        pool = skills_of[pl_prog_l[p]]
        required = tuple(pool[i] for i in range(pool_size) if needs_l[p][i])
        programmes = (
            () if open_l[p] else tuple(PROGRAMMES[j] for j in range(n_prog) if accepts_l[p][j])
        )
        starts = _TERM_START + timedelta(weeks=start_l[p])
        ranking: tuple[str, ...] | None = None
        if chosen_by[p] and ranked_l[p]:
            order = np.random.default_rng(rank_seed_l[p]).permutation(len(chosen_by[p]))
            ranking = tuple(st_ids[chosen_by[p][i]] for i in order[: 3 * cap_l[p]].tolist())
        placements.append(
            PlacementOffer(
                placement_id=pl_ids[p],
                company_id=f"c-{pl_comp_l[p]:06d}",
                region=REGIONS[pl_region_l[p]][0],
                capacity=cap_l[p],
                title=f"{PROGRAMMES[pl_prog_l[p]]} placement {p}",
                required_skills=required,
                programmes=programmes,
                starts_on=starts,
                ends_on=starts + timedelta(weeks=weeks_l[p], days=-3),
                site=GeoPoint(lat=pl_lat_l[p], lon=pl_lon_l[p]),
                ranking=ranking,
            )
        )
    return Round(students=tuple(students), placements=tuple(placements))


# ------------------------------------------------------------------------------ teachers

_SUBJECTS: dict[str, str] = {
    "EE": "Electrical installation",
    "IN": "Industrial engineering",
    "FT": "Vehicle technology",
    "BA": "Building and construction",
    "VF": "Heating, ventilation and plumbing",
    "HA": "Retail and logistics",
    "RL": "Restaurant and food",
    "TE": "Technology",
}
_TEACHER_FIRST_WEEK = date(2027, 1, 11)  # 2027-W02
_TEACHER_WEEKS = 20  # the spring term: 2027-W02 ... 2027-W21


def _iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year:04d}-W{week:02d}"


def generate_teachers(
    n_teachers: int,
    *,
    seed: int = 0,
    region: str = "SE-AB",
    periods_per_teacher: float = 0.8,
    choices: int = 3,
) -> Round:
    """A round of teachers in one region: teachers (`participant: teacher`) with their subject,
    the skills of their programme they want to update and a run of available weeks (a quarter
    of them give none: any week), and companies' working-life periods for teachers
    (`kind: teacher`, one to three weeks, one or two places) that update one or two skills of a
    programme; each teacher ranks `choices` periods, the popular ones more often, mostly of
    their own programme. Deterministic in `seed`; ids `t-000001`... and `w-000001`...."""
    rng = np.random.default_rng(seed)
    centre = next(r for r in REGIONS if r[0] == region)
    n_periods = max(1, round(n_teachers * periods_per_teacher / 1.4))
    n_prog = len(PROGRAMMES)
    pool_size = len(_SKILLS[PROGRAMMES[0]])
    pr_prog = rng.integers(0, n_prog, n_periods)
    pr_pop = rng.pareto(1.5, n_periods) + 0.1
    pr_start = rng.integers(0, _TEACHER_WEEKS - 3, n_periods)
    pr_weeks = rng.choice([1, 2, 2, 3], n_periods)
    pr_cap = rng.choice([1, 1, 2], n_periods)
    pr_skill = rng.integers(0, pool_size, (n_periods, 2))
    pr_two = rng.random(n_periods) < 0.4
    periods: list[PlacementOffer] = []
    for p in range(n_periods):
        pool = _SKILLS[PROGRAMMES[int(pr_prog[p])]]
        skills = dict.fromkeys(pool[int(i)] for i in pr_skill[p, : 2 if pr_two[p] else 1].tolist())
        starts = _TEACHER_FIRST_WEEK + timedelta(weeks=int(pr_start[p]))
        periods.append(
            PlacementOffer(
                placement_id=f"w-{p + 1:06d}",
                kind="teacher",
                company_id=f"c-w{p // 2 + 1:05d}",
                region=region,
                capacity=int(pr_cap[p]),
                title=f"Working-life period: {', '.join(skills)}",
                required_skills=tuple(skills),
                programmes=(PROGRAMMES[int(pr_prog[p])],),
                starts_on=starts + timedelta(days=rng.integers(0, 2).item()),
                ends_on=starts + timedelta(weeks=int(pr_weeks[p]), days=-3),
                site=GeoPoint(
                    lat=float(np.clip(centre[1] + rng.normal(0.0, 0.2), -90, 90)),
                    lon=float(np.clip(centre[2] + rng.normal(0.0, 0.35), -180, 180)),
                ),
            )
        )
    teachers: list[StudentProfile] = []
    for t in range(n_teachers):
        prog = int(rng.integers(0, n_prog))
        pool = _SKILLS[PROGRAMMES[prog]]
        wants = tuple(pool[i] for i in range(pool_size) if rng.random() < 0.8) or (pool[0],)
        weeks: tuple[str, ...] = ()
        if rng.random() >= 0.25:
            first = int(rng.integers(0, _TEACHER_WEEKS - 2))
            length = int(rng.integers(4, 11))
            weeks = tuple(
                _iso_week(_TEACHER_FIRST_WEEK + timedelta(weeks=w))
                for w in range(first, min(first + length, _TEACHER_WEEKS))
            )
        weight = pr_pop * np.where(pr_prog == prog, 1.0, 0.05)
        picked = rng.choice(
            n_periods, size=min(choices, n_periods), replace=False, p=weight / weight.sum()
        )
        teachers.append(
            StudentProfile(
                student_id=f"t-{t + 1:06d}",
                participant="teacher",
                subject=_SUBJECTS[PROGRAMMES[prog]],
                region=region,
                programme=PROGRAMMES[prog],
                skills=wants,
                available_weeks=weeks,
                preferences=tuple(f"w-{int(p) + 1:06d}" for p in picked.tolist()),
                home=GeoPoint(
                    lat=float(np.clip(centre[1] + rng.normal(0.0, 0.2), -90, 90)),
                    lon=float(np.clip(centre[2] + rng.normal(0.0, 0.35), -180, 180)),
                ),
            )
        )
    return Round(students=tuple(teachers), placements=tuple(periods))
