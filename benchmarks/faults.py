"""Fault harness: SIGKILL every step at random moments and race writers, readers and reviews;
compare each outcome with an uninterrupted reference run.

    python benchmarks/faults.py               # the full campaign (34 trials planned)
    python benchmarks/faults.py --quick       # a handful of trials, no LLM steps
    python benchmarks/faults.py --no-llm      # every trial kind over the steps without an LLM
    python benchmarks/faults.py --json        # one JSON object on stdout

Everything runs through the CLI (`python -m microvqa_tui`, this tree first on PYTHONPATH)
on a few figures of the embedded sample, in a scratch folder:

1. reference: the chain ingest → generate spatial → embed → stage1 → signals → graph → mcq
   → select → dedup → export runs once, uninterrupted; the store is copied after each step;
2. kill trials: from the store before step S, S starts and is SIGKILLed at a random moment
   (seeded), then S runs again to the end; the store (or export folder) must equal the
   reference after S: same ids, same key columns (`faultkit.KEY_COLUMNS`), no duplicates;
3. concurrent ingests: two ingests of overlapping manifests at once on an empty store;
4. races: during each step after the first, a reviewer (the review service, in another
   process) accepts and rejects MCQs and a reader (the TUI's query service and `stats`)
   reads; afterwards every decision must still show on its item ("decisions lost"
   otherwise), the reader must have seen no error, and the store must equal the reference
   apart from the review columns.

Failures are listed with their trial, step and table. The LLM steps use the offline SmolLM2
GGUF with every count bounded (see LLM_ENV). No trial starts after --budget-s (default 900 s);
those left are counted as `skipped_for_time`. A step that cannot run on the input (e.g. the
graph without labelled QAs) is listed in `steps_not_run` and gets no trials.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from faultkit import (
    SAMPLE_MANIFEST,
    Cli,
    compare_exports,
    compare_states,
    copy_store,
    duplicate_keys,
    export_state,
    kill_after,
    store_state,
)

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
# Kill trials per step: `--kills`, one more for the quick steps, one only for Stage 1 and MCQ
# (each of their LLM calls takes seconds to minutes on a loaded CPU).
QUICK_KILL_STEPS = ("ingest", "spatial", "select", "export")
KILLS_FIXED = {"stage1": 1, "mcq": 1}
# Every LLM count bounded: a handful of calls per step on the CPU. Selection keeps its
# rule-based checks; its LLM tests (image-free, difficulty, rewrites) are off to fit the budget.
LLM_ENV = {
    "MICROVQA_STAGE1__TASK_TYPES": '["expert_visual_understanding"]',
    "MICROVQA_STAGE1__MAX_TOKENS": "128",
    "MICROVQA_SELECT__SHORTCUT_REMOVAL": "false",
    "MICROVQA_SELECT__DIFFICULTY": "false",
    "MICROVQA_SELECT__REWRITE_ROUNDS": "0",
    "MICROVQA_SELECT__REGENERATE_COT": "false",
    "MICROVQA_SELECT__BLOOM_USE_LLM": "false",
    "MICROVQA_USER": "faults",
}


def kills_for(step: str, kills: int) -> int:
    return KILLS_FIXED.get(step, kills + (step in QUICK_KILL_STEPS))


@dataclass
class Trial:
    trial: str
    kind: str  # kill | concurrent_ingest | race
    step: str
    seconds: float = 0.0
    killed: bool | None = None
    delay_s: float | None = None
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
class Campaign:
    work: Path
    cli: Cli
    rng: random.Random
    steps: list[tuple[str, list[str]]]
    states: dict[str, Path] = field(default_factory=dict)  # step -> store after it
    durations: dict[str, float] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    skipped: int = 0  # trials not started: the time budget ran out
    not_run: dict[str, str] = field(default_factory=dict)  # step -> why it could not run
    seeded_qas: int = 0

    def args(self, step: str, export: Path) -> list[str]:
        template = dict(self.steps)[step]
        manifest = self.work / "src" / "manifest.jsonl"
        return [a.format(manifest=manifest, export=export) for a in template]

    def before(self, step: str) -> Path:
        names = [name for name, _ in self.steps]
        index = names.index(step)
        return self.states[names[index - 1]] if index else self.work / "empty"


# ---------------------------------------------------------------------- inputs
def write_sample(folder: Path, figures: int) -> Path:
    """The first `figures` rows of the embedded sample (images copied beside), plus a second
    manifest that overlaps it by half, for the concurrent ingests."""
    rows = [json.loads(line) for line in SAMPLE_MANIFEST.read_text("utf-8").splitlines() if line]
    rows = rows[:figures]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for row in rows:
        shutil.copy2(SAMPLE_MANIFEST.parent / row["image"], folder / "images")
        row["image"] = f"images/{Path(row['image']).name}"
    lines = [json.dumps(r) for r in rows]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "overlap.jsonl").write_text("\n".join(lines[len(lines) // 2 :]) + "\n")
    return folder / "manifest.jsonl"


# ---------------------------------------------------------------------- reference chain
def build_reference(c: Campaign) -> None:
    """Run the chain once; a step that cannot run on this input (e.g. no QAs for the graph)
    is noted in `c.not_run` and gets no trials, and the chain goes on."""
    store = c.work / "ref" / "store"
    (c.work / "empty").mkdir(parents=True, exist_ok=True)
    for name, _ in c.steps:
        done = c.cli.run(c.args(name, c.work / "ref" / "export"), store, c.work / f"ref-{name}.log")
        c.durations[name] = round(done.seconds, 2)
        if done.code != 0:
            c.not_run[name] = (done.output.strip().splitlines() or [f"exit {done.code}"])[-1][:300]
        if name == "stage1":
            c.seeded_qas = seed_qas(store)  # trials of Stage 1 seed the same way
        c.states[name] = copy_store(store, c.work / "states" / name)
    c.states["export-folder"] = c.work / "ref" / "export"


def seed_qas(store_path: Path) -> int:
    """One plain QA per caption when Stage 1's small model wrote none (its output does not
    always parse), so the graph, MCQ and later steps have input. Returns how many."""
    from store import open_store
    from store.ids import text_id
    from store.schema import utcnow

    store = open_store(store_path)
    if store.count("qas"):
        return 0
    rows = []
    for cap in store.rows("captions", columns=["caption_id", "figure_id", "text"]):
        question = "What does this micrograph show, according to its caption?"
        answer = cap["text"].split(". ")[0][:200]
        rows.append(
            {
                "qa_id": text_id(cap["figure_id"], question, answer),
                "figure_id": cap["figure_id"],
                "caption_id": cap["caption_id"],
                "question": question,
                "answer": answer,
                "task_type": "expert_visual_understanding",
                "evidence": answer,
                "origin": "seeded",
                "created_at": utcnow(),
            }
        )
    store.insert_new("qas", rows)
    return len(rows)


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
def kill_trial(c: Campaign, step: str, index: int) -> Trial:
    t = Trial(f"kill-{step}-{index}", "kill", step)
    folder = _trial_dir(c, t.trial)
    store = copy_store(c.before(step), folder / "store")
    export = folder / "export"
    if step == "export":  # overwriting an earlier export of ours, as a user re-exports
        shutil.copytree(c.states["export-folder"], export)
    clock = time.perf_counter()
    t.delay_s = round(c.rng.uniform(0.25, 1.0) * c.durations[step], 2)
    proc = c.cli.start(c.args(step, export), store, folder / "killed.log")
    t.killed = kill_after(proc, t.delay_s)
    again = c.cli.run(c.args(step, export), store, folder / "rerun.log")
    t.seconds = round(time.perf_counter() - clock, 2)
    if again.code != 0:
        t.problems.append(f"re-run after the kill exited {again.code}: {again.output[-300:]}")
        return t
    if step == "stage1":
        seed_qas(store)
    _check_step(c, t, store, export)
    return t


# ---------------------------------------------------------------------- concurrent ingests
def concurrent_ingest_trial(c: Campaign, second: str, index: int) -> Trial:
    t = Trial(f"ingest-pair-{index}", "concurrent_ingest", "ingest")
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
def _worker(c: Campaign, args: list[str], store: Path, log: Path) -> subprocess.Popen:
    command = [c.cli.python, str(Path(__file__).resolve()), "--worker", *args, str(store)]
    handle = log.open("wb")
    try:
        return subprocess.Popen(
            command, env=c.cli.env(store), stdout=handle, stderr=subprocess.STDOUT
        )
    finally:
        handle.close()


def _worker_result(proc: subprocess.Popen, log: Path) -> dict:
    proc.wait(600)
    lines = log.read_text("utf-8", "replace").strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": "\n".join(lines[-5:]) or f"exit {proc.returncode}"}


def race_trial(c: Campaign, step: str) -> Trial:
    """A step, with a reviewer and a reader working on the same store meanwhile."""
    t = Trial(f"race-{step}", "race", step)
    folder = _trial_dir(c, t.trial)
    store = copy_store(c.before(step), folder / "store")
    export = folder / "export"
    if step == "export":
        shutil.copytree(c.states["export-folder"], export)
    duration = max(c.durations[step], 2.0)
    delay = round(c.rng.uniform(0.1, 0.6) * duration, 2)
    clock = time.perf_counter()
    proc = c.cli.start(c.args(step, export), store, folder / "step.log")
    reader = _worker(c, ["reader", f"{duration:.1f}"], store, folder / "reader.log")
    time.sleep(delay)
    reviewer = _worker(c, ["review", str(c.rng.randrange(10**6))], store, folder / "review.log")
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


def decisions_lost(store: Path, decided: dict[str, str]) -> tuple[int, list[str]]:
    """Decisions whose item no longer shows them (or whose audit row is gone)."""
    from store import open_store

    s = open_store(store)
    rows = {r["mcq_id"]: r["review"] for r in s.rows("mcqs", columns=["mcq_id", "review"])}
    logged = {
        (r["item_id"], r["action"]) for r in s.rows("decisions", columns=["item_id", "action"])
    }
    lost = []
    for mcq_id, review in decided.items():
        action = "accept" if review == "accepted" else "reject"
        if rows.get(mcq_id) != review or (mcq_id, action) not in logged:
            lost.append(f"mcqs: decision {review} on {mcq_id[:12]} lost (now {rows.get(mcq_id)!r})")
    return len(lost), lost[:3]


# ---------------------------------------------------------------------- workers
def review_worker(seed: str, store_path: str) -> dict:
    """Accept / reject up to 6 MCQs through the review service, a little apart."""
    from microvqa_tui.services.review import Reviewer
    from store import open_store

    rng = random.Random(int(seed))
    store = open_store(store_path)
    ids = sorted(r["mcq_id"] for r in store.rows("mcqs", columns=["mcq_id"]))
    decided: dict[str, str] = {}
    reviewer = Reviewer(store, "faults")
    for mcq_id in rng.sample(ids, min(6, len(ids))):
        action = rng.choice(["accept", "reject"])
        reviewer.decide("mcq", mcq_id, action)
        decided[mcq_id] = "accepted" if action == "accept" else "rejected"
        time.sleep(rng.uniform(0.05, 0.4))
    return {"decided": decided}


def reader_worker(seconds: str, store_path: str) -> dict:
    """Read like the TUI does (first page of every view, stats) until `seconds` pass."""
    from microvqa_tui.services.query import fetch_page
    from microvqa_tui.services.stats import store_stats
    from microvqa_tui.services.views import VIEWS
    from store import open_store

    deadline = time.monotonic() + float(seconds)
    reads = errors = 0
    first = ""
    while True:
        try:
            store = open_store(store_path)
            for view in VIEWS.values():
                fetch_page(store, view, limit=20)
            store_stats(store)
            reads += 1
        except Exception as exc:  # every failure counts, whatever it is
            errors += 1
            first = first or f"{type(exc).__name__}: {exc}"[:300]
        if time.monotonic() > deadline:
            return {"reads": reads, "errors": errors, "first_error": first}
        time.sleep(0.2)


# ---------------------------------------------------------------------- the campaign
def plan(c: Campaign, quick: bool, kills: int) -> list:
    """The trials to run, as callables, in a seeded order."""
    names = [name for name, _ in c.steps if name not in c.not_run]
    jobs = [
        (kill_trial, (c, s, i)) for s in names for i in range(1 if quick else kills_for(s, kills))
    ]
    jobs.append((concurrent_ingest_trial, (c, "manifest.jsonl", 0)))
    if not quick:
        jobs.append((concurrent_ingest_trial, (c, "overlap.jsonl", 1)))
    race_steps = [n for n in names if n not in ("ingest", "spatial")] if not quick else ["dedup"]
    jobs += [(race_trial, (c, s)) for s in race_steps]
    return jobs


def summary(c: Campaign, started: float) -> dict:
    failed = [t for t in c.trials if not t.ok]
    return {
        "trials": len(c.trials),
        "skipped_for_time": c.skipped,
        "killed": sum(1 for t in c.trials if t.killed),
        "mismatches": sum(1 for t in c.trials if t.problems),
        "duplicate_keys": sum(sum(t.duplicates.values()) for t in c.trials),
        "decisions": sum(t.decisions for t in c.trials),
        "decisions_lost": sum(t.decisions_lost for t in c.trials),
        "reader_errors": sum(t.reader_errors for t in c.trials),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "reference_step_s": c.durations,
        "steps_not_run": c.not_run,
        "seeded_qas": c.seeded_qas,
        "failures": [asdict(t) for t in failed],
        "results": [asdict(t) for t in c.trials],
    }


def print_text(report: dict) -> None:
    print(f"fault campaign: {report['trials']} trials in {report['elapsed_s']} s")
    print(
        "reference step seconds: "
        + ", ".join(f"{k} {v}" for k, v in report["reference_step_s"].items())
    )
    for t in report["results"]:
        ok = (
            "ok  "
            if not any(t[k] for k in ("problems", "duplicates", "decisions_lost", "reader_errors"))
            else "FAIL"
        )
        extra = f"killed={t['killed']} at {t['delay_s']} s" if t["kind"] == "kill" else ""
        if t["kind"] == "race":
            extra = f"decisions {t['decisions']}, reads {t['reader_reads']}"
        print(f"  {ok} {t['trial']:<22} {t['seconds']:>6.1f} s  {extra}")
        for problem in t["problems"]:
            print(f"         - {problem}")
    keys = ("killed", "skipped_for_time", "mismatches", "duplicate_keys", "decisions_lost")
    for key in (*keys, "reader_errors"):
        print(f"{key}: {report[key]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a handful of trials, no LLM steps")
    parser.add_argument(
        "--no-llm",
        action="store_true",
        help="every trial kind, but only the steps without an LLM (fits a loaded CPU)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--kills", type=int, default=2, help="kill trials per step")
    parser.add_argument("--figures", type=int, default=2, help="sample figures ingested")
    parser.add_argument(
        "--budget-s", type=float, default=900, help="start no trial after this many seconds"
    )
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        result = review_worker(*rest) if kind == "review" else reader_worker(*rest)
        print(json.dumps(result))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="microvqa-faults-"))
    steps = [s for s in CHAIN if not (args.quick or args.no_llm) or s[0] in QUICK_STEPS]
    c = Campaign(work, Cli(settings_env=dict(LLM_ENV)), random.Random(args.seed), steps)
    # The limit covers every caption: a re-run after a kill then ends where the reference did.
    c.cli.settings_env["MICROVQA_STAGE1__LIMIT"] = str(args.figures)
    started = time.perf_counter()
    write_sample(work / "src", args.figures)
    build_reference(c)
    jobs = plan(c, args.quick, args.kills)
    c.rng.shuffle(jobs)
    for function, call in jobs:
        if time.perf_counter() - started > args.budget_s:
            c.skipped += 1
            continue
        c.trials.append(function(*call))
        if not args.json:
            print(f"  {c.trials[-1].trial}: {'ok' if c.trials[-1].ok else 'FAIL'}", file=sys.stderr)
    report = summary(c, started)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
