"""One trial: the story in a region of its own, a fault at a random moment, then the checks;
and the ledger of all trials with its summary line."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

from tests.chaos.checks import Findings, Outcome, check, notices_of, settle
from tests.chaos.faults import BOUND, KINDS, Fault, Recovery, inject
from tests.chaos.stack import SERVICES, Api, Stack
from tests.chaos.story import Story
from tests.support.identity import DevTokens


@dataclass
class TrialResult:
    number: int
    kind: str | None
    region: str
    seed: int
    findings: Findings
    fault: Fault | None
    seconds: float
    story_seconds: float

    @property
    def failed(self) -> bool:
        return bool(self.findings.problems or (self.fault and self.fault.problems))

    def describe(self) -> str:
        head = (
            f"trial {self.number} ({self.kind or 'undisturbed'}, {self.region}, "
            f"{self.seconds:.0f} s)"
        )
        lines = [head]
        if self.fault is not None:
            f = self.fault
            lines.append(
                f"  {f.kind} at {f.at:.1f} s into the story: killed {', '.join(f.kills) or '-'}"
                f" for {f.down:.1f} s; {f.detail}"
            )
            lines += [f"  recovery {r}" for r in f.recoveries]
            lines += [f"  problem: {p}" for p in f.problems]
        lines += [f"  problem: {p}" for p in self.findings.problems]
        lines += [f"  note: {n}" for n in self.findings.notes]
        return "\n".join(lines)


@dataclass
class Ledger:
    """Every trial of the session, for the summary and the recovery test."""

    seed: int = 0
    trials: list[TrialResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def chaos(self) -> list[TrialResult]:
        return [t for t in self.trials if t.kind is not None]

    def recoveries(self) -> list[tuple[str, Recovery]]:
        return [(t.kind or "", r) for t in self.chaos if t.fault for r in t.fault.recoveries]

    def summary(self) -> list[str]:
        chaos = self.chaos
        kills: Counter[str] = Counter(t.kind for t in chaos if t.kind)
        lost = sum(t.findings.lost for t in chaos)
        duplicated = sum(t.findings.duplicated for t in chaos)
        failed = sum(t.failed for t in chaos)
        lines = [
            f"trials={len(chaos)} failed={failed} lost={lost} duplicated={duplicated} "
            f"(notices sent twice {sum(t.findings.notice_duplicates for t in chaos)}, "
            f"outbox rows published again {sum(t.findings.republished for t in chaos)}) "
            f"seed={self.seed}",
            "kills by kind: " + " ".join(f"{k}={kills.get(k, 0)}" for k in KINDS),
        ]
        relays = [t.fault for t in chaos if t.kind == "relay" and t.fault is not None]
        if relays:
            lines[-1] += (
                f" (relay kills with unsent rows: {sum(f.unsent > 0 for f in relays)} of "
                f"{len(relays)}, {sum(f.unsent for f in relays)} rows)"
            )
        by_kind: dict[str, list[float]] = {}
        for kind, recovery in self.recoveries():
            by_kind.setdefault(f"{kind}:{recovery.what}", []).append(recovery.seconds)
        if by_kind:
            lines.append(
                "recovery (s, max/median): "
                + "; ".join(
                    f"{k} {max(v):.1f}/{statistics.median(v):.1f}"
                    for k, v in sorted(by_kind.items())
                )
            )
        over = [r for _, r in self.recoveries() if r.bounded and r.seconds > BOUND]
        lines.append(
            f"recoveries over {BOUND:.0f} s: {len(over)} of "
            f"{sum(r.bounded for _, r in self.recoveries())}"
        )
        killed = [
            (t.findings.notice_duplicates, sum(k == "notifications" for k in t.fault.kills))
            for t in chaos
            if t.fault is not None and "notifications" in t.fault.kills
        ]
        if killed:
            lines.append(
                f"notices repeated per kill of the notifications service: at most one in "
                f"{sum(d <= k for d, k in killed)} of {len(killed)} trials, most in a trial "
                f"{max(d for d, _ in killed)}"
            )
        durations = [t.seconds for t in self.trials]
        if durations:
            lines.append(
                f"trial durations (s): {' '.join(f'{d:.0f}' for d in durations)} "
                f"(the first is the undisturbed run)"
            )
        return lines + self.notes


async def run_trial(
    stack: Stack,
    region: str,
    *,
    number: int,
    seed: int,
    kind: str | None,
    tokens: DevTokens,
    reference: Outcome | None,
    story_seconds: float,
) -> tuple[TrialResult, Story]:
    """The story of `seed` in `region` with one fault of `kind` (None: undisturbed) at a
    random moment of its expected `story_seconds`, then settling and the checks."""
    started = time.monotonic()
    rng = random.Random(f"{seed}:{number}:fault")
    story = Story(seed, f"t{number:02d}", region)
    api = Api(stack, tokens)
    sent_before = len(stack.infra.sink.messages())
    problems: list[str] = []
    fault: Fault | None = None

    telling = asyncio.create_task(story.run(api))

    async def faulty() -> Fault | None:
        if kind is None:
            return None
        # a relay or mid-send kill waits for its moment after this: arm it early
        latest = 0.5 if kind in ("relay", "notifications") else 0.9
        await asyncio.sleep(rng.uniform(0.05, latest) * story_seconds)
        return await inject(stack, kind, rng, story.started or started, telling.done)

    injecting = asyncio.create_task(faulty())
    try:
        await telling
    except Exception as error:
        problems.append(f"the story did not finish: {error!r}")
        problems.append(traceback.format_exc(limit=3))
    story_done = time.monotonic() - started
    try:
        fault = await injecting
    except Exception as error:
        problems.append(f"the fault could not be injected or recovered: {error!r}")
        problems.append(traceback.format_exc(limit=4))
    problems += await heal(stack)
    still = await settle(stack, region)
    if still:
        problems.append(f"did not settle: {still}")
    with contextlib.suppress(Exception):
        await story.final_state(api)
    mails = stack.infra.sink.messages()[sent_before:]
    try:
        findings = await check(stack, story, mails, reference)
    except Exception as error:
        findings = Findings()
        findings.wrong(f"the checks failed: {error!r}\n{traceback.format_exc(limit=4)}")
    findings.problems[:0] = problems
    result = TrialResult(
        number, kind, region, seed, findings, fault, time.monotonic() - started, story_done
    )
    with (stack.infra.folder / "progress.log").open("a", encoding="utf-8") as log:
        log.write(result.describe() + "\n")
    return result, story


async def heal(stack: Stack) -> list[str]:
    """Whatever a trial left down (a fault that failed half-way, a process that died
    unasked), started again, so that the next trial finds everything running; what was
    found down, in words."""
    found: list[str] = []
    infra = stack.infra
    if not infra.pg.running():
        found.append("postgres was down after the trial; started again")
        await asyncio.to_thread(infra.pg.start)
    down = [n.node_id for n in infra.kafka.nodes if n.node_id not in infra.kafka.running()]
    if down:
        found.append(f"kafka nodes {down} were down after the trial; started again")
        await asyncio.to_thread(infra.kafka.start)
    for service, process in stack.processes.items():
        if process.proc is None or process.proc.poll() is not None:
            code = None if process.proc is None else process.proc.returncode
            found.append(f"{service} had exited ({code}) unasked; started again")
            await asyncio.to_thread(process.start, 120)
    return found


def reference_of(story: Story, stack: Stack) -> Outcome:
    """What the undisturbed run of `story` ended with, for the trials to compare against."""
    return Outcome(dict(story.final), notices_of(story, stack.infra.sink.messages()))


__all__ = ["SERVICES", "Ledger", "TrialResult", "reference_of", "run_trial"]
