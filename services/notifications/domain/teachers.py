"""A teacher's wording of the notices where the students' would be wrong. Pure.

A notice about a working-life period for teachers (its placement's `kind: teacher`, or a
teacher recipient's `participant: teacher`) takes its subject, its reasons and how a proposal
was chosen from here, and its body from `templates/{lang}/teacher/{kind}.*.j2` where one exists
(`adapters/rendering.py`); the others are the students' templates (a reminder, a digest, a
supplementary round read the same for both)."""

from __future__ import annotations

from typing import Final

from shared.contracts.vocabulary import Language

from .notices import NoticeKind

TEMPLATE_FOLDER: Final = "teacher"
"""`templates/{lang}/teacher/`: the teacher's bodies of the kinds whose students' words differ."""

SUBJECTS: dict[Language, dict[NoticeKind, str]] = {
    "sv": {
        "proposed": "En lärare föreslås till er arbetslivsperiod: {title}",
        "confirmed": "Arbetslivsperioden är bekräftad: {title}",
        "cancelled": "Förslaget till er arbetslivsperiod är återkallat: {title}",
        "digest": "{count} lärare föreslås till er arbetslivsperiod: {title}",
        "reminder": "Påminnelse: arbetslivsperioden börjar snart: {title}",
        "student_proposed": "Du har fått ett förslag på arbetslivsperiod: {title}",
        "student_confirmed": "Din arbetslivsperiod är bekräftad: {title}",
        "student_unplaced": "Du har ingen arbetslivsperiod än – så går du vidare",
        "student_supplementary": "Ny omgång: välj bland arbetslivsperioder som passar dig",
        "student_reminder": "Påminnelse: din arbetslivsperiod börjar snart: {title}",
    },
    "fi": {
        "proposed": "Opettajaa ehdotetaan työelämäjaksollenne: {title}",
        "confirmed": "Opettajan työelämäjakso on vahvistettu: {title}",
        "cancelled": "Ehdotus työelämäjaksollenne on peruttu: {title}",
        "digest": "{count} opettajaa ehdotetaan työelämäjaksollenne: {title}",
        "reminder": "Muistutus: opettajan työelämäjakso alkaa pian: {title}",
        "student_proposed": "Sinulle ehdotetaan työelämäjaksoa: {title}",
        "student_confirmed": "Työelämäjaksosi on vahvistettu: {title}",
        "student_unplaced": "Et saanut vielä työelämäjaksoa – näin jatkat",
        "student_supplementary": "Uusi kierros: valitse sinulle sopivista työelämäjaksoista",
        "student_reminder": "Muistutus: työelämäjaksosi alkaa pian: {title}",
    },
    "en": {
        "proposed": "A teacher is proposed for your working-life period: {title}",
        "confirmed": "Working-life period confirmed: {title}",
        "cancelled": "A proposal for your working-life period was cancelled: {title}",
        "digest": "{count} teachers are proposed for your working-life period: {title}",
        "reminder": "Reminder: the working-life period starts soon: {title}",
        "student_proposed": "A working-life period is proposed for you: {title}",
        "student_confirmed": "Your working-life period is confirmed: {title}",
        "student_unplaced": "You have no working-life period yet: your next steps",
        "student_supplementary": "Another round: rank the working-life periods that fit you",
        "student_reminder": "Reminder: your working-life period starts soon: {title}",
    },
}

REASONS: dict[Language, dict[str, str]] = {
    "sv": {
        "declined": "läraren eller företaget tackade nej",
        "student_withdrawn": "läraren har dragit sig ur",
        "placement_withdrawn": "perioden har dragits tillbaka",
    },
    "fi": {
        "declined": "opettaja tai yritys kieltäytyi",
        "student_withdrawn": "opettaja on vetäytynyt",
        "placement_withdrawn": "jakso on peruttu",
    },
    "en": {
        "declined": "the teacher or the company declined",
        "student_withdrawn": "the teacher withdrew",
        "placement_withdrawn": "the working-life period was withdrawn",
    },
}
"""Why a teacher's proposal no longer stands, where the students' words name a student."""

HOW: dict[Language, dict[str, str]] = {
    "sv": {"filled": "en ledig period som passar dig, fast du inte hade valt den"},
    "fi": {"filled": "vapaa jakso, joka sopii sinulle, vaikka et valinnut sitä"},
    "en": {"filled": "a period that fits you, though you did not rank it"},
}
"""How a teacher's proposed period was chosen, where the students' words differ."""

UNPLACED: dict[Language, dict[str, str]] = {
    "sv": {
        "no_eligible_choice": (
            "ingen av perioderna du valde passade dig (kompetenser att uppdatera, program, "
            "veckor eller resväg)"
        ),
        "choices_full": "perioderna du valde behövdes av andra lärare",
        "no_eligible_vacancy": "varken dina val eller någon ledig period i regionen passade dig",
    },
    "fi": {
        "no_eligible_choice": (
            "mikään valitsemistasi jaksoista ei sopinut sinulle (päivitettävä osaaminen, "
            "koulutusala, viikot tai matka)"
        ),
        "choices_full": "valitsemasi jaksot menivät muille opettajille",
        "no_eligible_vacancy": (
            "sinulle ei sopinut mikään valitsemistasi jaksoista eikä yksikään alueen vapaa jakso"
        ),
    },
    "en": {
        "no_eligible_choice": (
            "none of the periods you ranked fit you (skills to update, programme, weeks or travel)"
        ),
        "choices_full": "the periods you ranked were all needed by other teachers",
        "no_eligible_vacancy": "neither your choices nor any period of your region fit you",
    },
}
"""Why a teacher is unplaced (the outcome's reason)."""
