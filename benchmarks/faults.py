"""Fault harness: SIGKILL every step at random moments and race writers, readers and reviews;
compare each outcome with an uninterrupted reference run.

    python benchmarks/faults.py               # the full campaign, LLM steps included (15 min)
    python benchmarks/faults.py --quick       # a handful of trials, no LLM steps
    python benchmarks/faults.py --no-llm      # every trial kind over the steps without an LLM
    python benchmarks/faults.py --no-fork     # a fresh interpreter per command (slower)
    python benchmarks/faults.py --json        # one JSON object on stdout

Everything runs through the CLI (`python -m microvqa_tui`, this tree first on PYTHONPATH)
on a few figures of the embedded sample, in a scratch folder. By default each command is a
child forked from a preloaded fork server (`forkserver.py`: torch, llama_cpp, transformers,
... imported once; models are still loaded by each child, and each child is SIGKILLed like
any process); `--no-fork` starts a fresh interpreter per command instead.

1. reference: the chain ingest → generate spatial → embed → stage1 → signals → graph → mcq
   → select → dedup → export runs once, uninterrupted; the store is copied after each step,
   and each step's time is split into start-up (until its run record opens) and work;
2. kill trials: from the store before step S, S starts; once its run record opens, it is
   SIGKILLed after a random (seeded) share of the reference's work time; then S runs again
   to the end; the store (or export folder) must equal the reference after S: same ids,
   same key columns (`faultkit.KEY_COLUMNS`), no duplicates;
3. concurrent ingests: two ingests of overlapping manifests at once on an empty store;
4. races: during each step after the first two, a reviewer (the review service, in another
   process) accepts and rejects MCQs and a reader (the TUI's query service and `stats`)
   reads; afterwards every decision must still show on its item ("decisions lost"
   otherwise), the reader must have seen no error, and the store must equal the reference
   apart from the review columns.

Budget: trials run `--jobs` at a time (default 3), beside the reference: every trial kind
once (one kill per step, the ingest pairs, the races), each starting as soon as the
reference has passed its step; then further rounds of kills, each trial handed to the next
free worker if its expected cost (from the reference's step times) still fits `--budget-s`
(default 900 s, the reference and the fork server's start included), until a round has no
trial left that fits. A first-round trial that no longer fits is skipped (`skipped_for_time`). The LLM steps use the offline SmolLM2 GGUF, one llama.cpp
thread, every count bounded (see LLM_ENV): Stage 1 on 2 captions (128 tokens a call), one
MCQ attempt per QA (256 tokens), selection with its LLM checks on, one answer each (a
regenerated CoT: 48 tokens). A step that cannot run on the input is listed in
`steps_not_run` and gets no trials. The report gives wall and CPU seconds (this process and
every command it ran) and the load average at the start and the end. Failures are listed
with their trial, step and table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from faultinputs import decisions_lost, reader_worker, review_worker, seed_qas, write_sample
from faultkit import (
    Cli,
    Process,
    compare_exports,
    compare_states,
    copy_store,
    duplicate_keys,
    export_state,
    kill_after,
    presence_files,
    store_state,
    wait_run_open,
)
from faultreport import print_text, summary

EXPORT_ARGS = ["--format", "jsonl", "--include-flagged", "--include-held-out", "--overwrite"]
# The chain: (name, CLI arguments). `{export}` is the export folder of the trial.
CHAIN: list[tuple[str, list[str]]] = [
    ("ingest", ["ingest", "{manifest}", "--json"]),
    ("spatial", ["generate", "spatial", "--count", "3", "--json"]),
    ("embed", ["run", "embed", "--json"]),
    ("stage1", ["run", "stage1", "--json"]),
    ("signals", ["run", "signals", "--json"]),
    ("graph", ["run", "graph", "--json"]),
    ("mcq", ["run", "mcq", "--json"]),
    ("select", ["run", "select", "--json"]),
    ("dedup", ["run", "dedup", "--json"]),
    ("export", ["export", "{export}", *EXPORT_ARGS, "--json"]),
]
QUICK_STEPS = ("ingest", "spatial", "embed", "dedup", "export")
# Every LLM count bounded: a handful of calls per step on the CPU, every LLM check of the
# selection on (one answer each). One llama.cpp thread per process: trials run side by side,
# and on a loaded CPU two threads that spin at every barrier are slower than one.
LLM_ENV = {
    "MICROVQA_MODELS__LLM_THREADS": "1",
    "MICROVQA_STAGE1__TASK_TYPES": '["expert_visual_understanding"]',
    "MICROVQA_STAGE1__MAX_TOKENS": "128",
    "MICROVQA_SIGNALS__AGENT_MAX_TOKENS": "48",
    "MICROVQA_MCQ__MAX_ATTEMPTS": "1",
    "MICROVQA_MCQ__MAX_TOKENS": "256",
    "MICROVQA_SELECT__IMAGE_FREE_ATTEMPTS": "1",
    "MICROVQA_SELECT__REWRITE_ROUNDS": "0",
    "MICROVQA_SELECT__DIFFICULTY_ATTEMPTS": "1",
    "MICROVQA_SELECT__COT_MAX_TOKENS": "48",
    "MICROVQA_USER": "faults",
}
SAFETY = 1.25  # expected trial costs are scaled by this when planning the budget


@dataclass
class Trial:
    trial: str
    kind: str  # kill | concurrent_ingest | race
    step: str
    share: float = 0.0  # random draw in [0, 1): when to kill (or start the reviewer)
    seed: int = 0  # the reviewer's
    seconds: float = 0.0
    killed: bool | None = None
    delay_s: float | None = None  # after the run record opened
    problems: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    decisions: int = 0
    decisions_lost: int = 0
    reader_reads: int = 0
    reader_errors: int = 0

    @property
    def ok(self) -> bool:
        return not (self.problems or self.duplicates or self.decisions_lost or self.reader_errors)


@dataclass
class StepTime:
    """A reference step's seconds: in all, until its run record opened, and after."""

    total: float
    open: float
    work: float


@dataclass
class Campaign:
    work: Path
    cli: Cli
    rng: random.Random
    steps: list[tuple[str, list[str]]]
    states: dict[str, Path] = field(default_factory=dict)  # step -> store after it
    times: dict[str, StepTime] = field(default_factory=dict)
    check_s: float = 1.0  # reading and comparing a store once
    not_run: dict[str, str] = field(default_factory=dict)  # step -> why it could not run
    seeded_qas: int = 0
    # Set once the reference has passed a step: its trials may start (the reference goes on).
    ready: dict[str, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ready = {name: threading.Event() for name, _ in self.steps}

    def args(self, step: str, export: Path) -> list[str]:
        template = dict(self.steps)[step]
        manifest = self.work / "src" / "manifest.jsonl"
        return [a.format(manifest=manifest, export=export) for a in template]

    def before(self, step: str) -> Path:
        names = [name for name, _ in self.steps]
        index = names.index(step)
        return self.states[names[index - 1]] if index else self.work / "empty"

    def cost(self, t: Trial) -> float:
        """Expected seconds of a trial, from the reference's step times."""
        step = self.times[t.step]
        if t.kind == "kill":  # start-up and part of the work, then the whole re-run
            return step.open + t.share * step.work + step.total + 2 * self.check_s
        if t.kind == "race":  # the step, the workers' start-up, the decisions check
            return step.total + 3 + 2 * self.check_s
        return 2 * step.total + 2 * self.check_s  # two ingests at once, then a third


# ---------------------------------------------------------------------- inputs
# ---------------------------------------------------------------------- reference chain
def build_reference(c: Campaign) -> None:
    """Run the chain once; a step that cannot run on this input (e.g. no QAs for the graph)
    is noted in `c.not_run` and gets no trials, and the chain goes on. Each step's trials
    may start as soon as the reference has passed it."""
    store = c.work / "ref" / "store"
    (c.work / "empty").mkdir(parents=True, exist_ok=True)
    c.states["export-folder"] = c.work / "ref" / "export"
    try:
        for name, _ in c.steps:
            log = c.work / f"ref-{name}.log"
            done = c.cli.run(c.args(name, c.work / "ref" / "export"), store, log)
            opened = done.open_s if done.open_s is not None else done.seconds
            c.times[name] = StepTime(
                round(done.seconds, 2), round(opened, 2), round(done.work_s, 2)
            )
            if done.code != 0:
                c.not_run[name] = (done.output.strip().splitlines() or [f"exit {done.code}"])[-1][
                    :300
                ]
            if name == "stage1":
                c.seeded_qas = seed_qas(store)  # trials of Stage 1 seed the same way
            c.states[name] = copy_store(store, c.work / "states" / name)
            if name == "ingest":
                clock = time.perf_counter()
                store_state(store)
                c.check_s = round(time.perf_counter() - clock, 2)
            c.ready[name].set()
    finally:  # a trial waiting on a step the reference never reached does not hang
        for name, event in c.ready.items():
            if not event.is_set():
                c.not_run.setdefault(name, "the reference run stopped before it")
                event.set()


def _trial_dir(c: Campaign, trial: str) -> Path:
    folder = c.work / "trials" / trial
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _check_step(c: Campaign, t: Trial, store: Path, export: Path | None, ignore=None) -> None:
    """Compare a trial's store (and export folder) with the reference after its step."""
    got = store_state(store)
    t.duplicates = duplicate_keys(got)
    t.problems += compare_states(store_state(c.states[t.step]), got, ignore=ignore)
    if t.step == "export" and export is not None:
        t.problems += compare_exports(export_state(c.states["export-folder"]), export_state(export))


# ---------------------------------------------------------------------- kill trials
def start_step(
    c: Campaign, step: str, store: Path, export: Path, log: Path
) -> tuple[Process, bool]:
    """Start `step` on `store`; returns it and whether it opened its run record."""
    before = presence_files(store)
    proc = c.cli.start(c.args(step, export), store, log)
    return proc, wait_run_open(proc, store, before)


def kill_trial(c: Campaign, t: Trial) -> Trial:
    """Kill the step a random share of its reference work time after its run opened."""
    folder = _trial_dir(c, t.trial)
    store = copy_store(c.before(t.step), folder / "store")
    export = folder / "export"
    if t.step == "export":  # overwriting an earlier export of ours, as a user re-exports
        shutil.copytree(c.states["export-folder"], export)
    clock = time.perf_counter()
    t.delay_s = round(t.share * c.times[t.step].work, 2)
    proc, opened = start_step(c, t.step, store, export, folder / "killed.log")
    t.killed = kill_after(proc, t.delay_s) if opened else False
    again = c.cli.run(c.args(t.step, export), store, folder / "rerun.log")
    t.seconds = round(time.perf_counter() - clock, 2)
    if again.code != 0:
        t.problems.append(f"re-run after the kill exited {again.code}: {again.output[-300:]}")
        return t
    if t.step == "stage1":
        seed_qas(store)
    _check_step(c, t, store, export)
    return t


# ---------------------------------------------------------------------- concurrent ingests
def concurrent_ingest_trial(c: Campaign, t: Trial) -> Trial:
    second = "manifest.jsonl" if t.seed == 0 else "overlap.jsonl"
    folder = _trial_dir(c, t.trial)
    store = folder / "store"
    src = c.work / "src"
    clock = time.perf_counter()
    procs = [
        c.cli.start(["ingest", str(src / "manifest.jsonl"), "--json"], store, folder / "a.log"),
        c.cli.start(["ingest", str(src / second), "--json"], store, folder / "b.log"),
    ]
    codes = [p.wait(600) for p in procs]
    if codes[1] != 0 or codes[0] != 0:
        t.problems.append(f"exit codes {codes}")
    # The first manifest covers the second: together they must give the reference ingest.
    again = c.cli.run(["ingest", str(src / "manifest.jsonl"), "--json"], store, folder / "c.log")
    t.seconds = round(time.perf_counter() - clock, 2)
    if again.code != 0:
        t.problems.append(f"re-ingest exited {again.code}")
    # Ids are content-addressed and the first writer wins, so which manifest line a figure's
    # provenance names depends on which ingest got there first: not a loss, left out.
    _check_step(c, t, store, folder / "export", ignore={"figures": ("source_ref",)})
    return t


# ---------------------------------------------------------------------- races
def _worker(c: Campaign, args: list[str], store: Path, log: Path) -> Process:
    command = [c.cli.python, str(Path(__file__).resolve()), "--worker", *args, str(store)]
    return c.cli.start_command(command, store, log)


def _worker_result(proc: Process, log: Path) -> dict:
    proc.wait(600)
    lines = log.read_text("utf-8", "replace").strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": "\n".join(lines[-5:]) or f"exit {proc.returncode}"}


def race_trial(c: Campaign, t: Trial) -> Trial:
    """A step, with a reviewer and a reader working on the same store meanwhile: the reader
    from the moment the step's run opens, the reviewer a random share of its work later."""
    step = t.step
    folder = _trial_dir(c, t.trial)
    store = copy_store(c.before(step), folder / "store")
    export = folder / "export"
    if step == "export":
        shutil.copytree(c.states["export-folder"], export)
    work = c.times[step].work
    clock = time.perf_counter()
    proc, _ = start_step(c, step, store, export, folder / "step.log")
    reader = _worker(c, ["reader", f"{1.5 * work + 2:.1f}"], store, folder / "reader.log")
    t.delay_s = round(t.share * work, 2)
    time.sleep(t.delay_s)
    reviewer = _worker(c, ["review", str(t.seed)], store, folder / "review.log")
    code = proc.wait(600)
    if step == "stage1":
        seed_qas(store)
    review, read = (
        _worker_result(reviewer, folder / "review.log"),
        _worker_result(reader, folder / "reader.log"),
    )
    t.seconds = round(time.perf_counter() - clock, 2)
    if code != 0:
        t.problems.append(f"the step exited {code}: {(folder / 'step.log').read_text()[-300:]}")
    if "error" in review:
        t.problems.append(f"reviewer failed: {review['error'][-300:]}")
    t.reader_reads, t.reader_errors = read.get("reads", 0), read.get("errors", 1)
    if t.reader_errors:
        t.problems.append(f"reader: {read.get('first_error') or read.get('error')}")
    decided = review.get("decided", {})
    t.decisions = len(decided)
    t.decisions_lost, lost = decisions_lost(store, decided)
    t.problems += lost
    # What the reviews changed (and what a step derives from reviews) is checked above.
    review_columns = {"mcqs": ("review", "status", "reason"), "decisions": ("*",)}
    _check_step(c, t, store, None, ignore=review_columns)
    return t


# ---------------------------------------------------------------------- the campaign
TRIALS = {"kill": kill_trial, "race": race_trial, "concurrent_ingest": concurrent_ingest_trial}


def _kill_round(c: Campaign, names: list[str], index: int) -> list[Trial]:
    trials = [Trial(f"kill-{s}-{index}", "kill", s, share=c.rng.random()) for s in names]
    c.rng.shuffle(trials)
    return trials


def first_round(c: Campaign, quick: bool) -> list[Trial]:
    """Every trial kind once: a kill per step, the ingest pairs, a race per writing step; in
    the chain's order (shuffled within a step), so they can start while the reference runs."""
    names = [name for name, _ in c.steps]
    trials = _kill_round(c, names, 0)
    pairs = (0,) if quick else (0, 1)
    trials += [Trial(f"ingest-pair-{i}", "concurrent_ingest", "ingest", seed=i) for i in pairs]
    # Before `spatial` there is no MCQ to review.
    race_steps = ["dedup"] if quick else [n for n in names if n not in ("ingest", "spatial")]
    trials += [
        Trial(f"race-{s}", "race", s, share=c.rng.uniform(0, 0.6), seed=c.rng.randrange(10**6))
        for s in race_steps
        if s in names
    ]
    c.rng.shuffle(trials)
    return sorted(trials, key=lambda t: names.index(t.step))


class MoreRounds:
    """Rounds of kills after the first, handed out one trial at a time to whichever worker is
    free: the next trial (in the shuffled round order) whose expected cost, from the
    reference's step times, still fits before the deadline; none once a whole round has no
    trial that fits, or after `rounds` rounds in all (0: no limit)."""

    def __init__(self, c: Campaign, rounds: int, deadline: float):
        self.c, self.rounds, self.deadline = c, rounds, deadline
        self.names = [name for name, _ in c.steps if name not in c.not_run]
        self.index, self.queue = 0, []
        self.lock = threading.Lock()

    def fits(self, t: Trial) -> bool:
        return time.perf_counter() + self.c.cost(t) * SAFETY <= self.deadline

    def next(self) -> Trial | None:
        with self.lock:
            while self.names:
                fitting = [t for t in self.queue if self.fits(t)]
                if fitting:
                    self.queue.remove(fitting[0])
                    return fitting[0]
                if self.queue or (self.rounds and self.index + 1 >= self.rounds):
                    return None  # what is left of this round does not fit: stop
                self.index += 1
                self.queue = _kill_round(self.c, self.names, self.index)
            return None


def run_campaign(c: Campaign, args: argparse.Namespace, deadline: float) -> list:
    """The reference (in this thread) and the trials (`args.jobs` at a time): the first
    round's trials of a step start once the reference has passed it; further rounds are
    handed out from the reference's times once it ends (`MoreRounds`). Each result is a Trial, "skipped" (its
    expected cost no longer fit before `deadline`) or "not_run" (its step could not run)."""
    finished: set[str] = set()

    def one(t: Trial) -> Trial | str:
        c.ready[t.step].wait()
        if t.step in c.not_run:
            return "not_run"
        if time.perf_counter() + c.cost(t) * SAFETY > deadline:
            return "skipped"
        try:
            TRIALS[t.kind](c, t)
        except Exception as exc:  # a harness failure fails the trial; it is not hidden
            t.problems.append(f"harness error: {type(exc).__name__}: {exc}"[:300])
        finished.add(t.trial)
        if not args.json:
            print(f"  {t.trial}: {'ok' if t.ok else 'FAIL'} ({t.seconds} s)", file=sys.stderr)
        return t

    def drain(rounds: MoreRounds) -> list:
        results = []
        while (t := rounds.next()) is not None:
            results.append(one(t))
        return results

    first = first_round(c, args.quick)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(one, t) for t in first]
        build_reference(c)
        rounds = MoreRounds(c, 1 if args.quick else args.rounds, deadline)
        drains = [pool.submit(drain, rounds) for _ in range(args.jobs)]
        results = [f.result() for f in futures]
        return results + [t for f in drains for t in f.result()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a handful of trials, no LLM steps")
    parser.add_argument(
        "--no-llm",
        action="store_true",
        help="every trial kind, but only the steps without an LLM",
    )
    parser.add_argument(
        "--no-fork", action="store_true", help="a fresh interpreter per command (no fork server)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--rounds", type=int, default=0, help="rounds of kill trials (0 = as many as fit)"
    )
    parser.add_argument("--jobs", type=int, default=3, help="trials run at a time")
    parser.add_argument("--figures", type=int, default=2, help="sample figures ingested")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=900,
        help="the whole campaign's seconds, reference included",
    )
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        result = review_worker(*rest) if kind == "review" else reader_worker(*rest)
        print(json.dumps(result))
        return 0
    started = time.perf_counter()
    load_start = round(os.getloadavg()[0], 1)
    work = args.work or Path(tempfile.mkdtemp(prefix="microvqa-faults-"))
    steps = [s for s in CHAIN if not (args.quick or args.no_llm) or s[0] in QUICK_STEPS]
    c = Campaign(work, Cli(settings_env=dict(LLM_ENV)), random.Random(args.seed), steps)
    # The limit covers every caption: a re-run after a kill then ends where the reference did.
    c.cli.settings_env["MICROVQA_STAGE1__LIMIT"] = str(args.figures)
    extra: dict = {"mode": "fresh interpreters" if args.no_fork else "fork server"}
    try:
        if not args.no_fork:
            info = c.cli.start_fork_server(work / "forkserver.log")
            extra["fork_server"] = {
                "start_s": round(time.perf_counter() - started, 1),
                "threads_at_fork": info["threads"],
                "modules_not_preloaded": len(info["not_preloaded"]),
            }
        write_sample(work / "src", args.figures)
        results = run_campaign(c, args, started + args.budget_s)
    finally:
        c.cli.close()
    extra.update(jobs=args.jobs, load_start=load_start, load_end=round(os.getloadavg()[0], 1))
    report = summary(c, results, started, extra)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, default=str) if args.json else "", end="\n" if args.json else "")
    if not args.json:
        print_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
