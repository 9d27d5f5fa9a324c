"""The fault campaign's report: one dict (printed as JSON with `--json`) and its text form."""

from __future__ import annotations

import resource
import time
from dataclasses import asdict
from typing import Any


def cpu_seconds() -> float:
    """CPU time of this process and every child it (or the fork server) waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return round(total, 1)


def summary(c: Any, results: list, started: float, extra: dict) -> dict:
    """`c` is the campaign; `results` its trials and a "skipped" string per trial cut for time."""
    done = [t for t in results if not isinstance(t, str)]
    return {
        "trials": len(done),
        "skipped_for_time": results.count("skipped"),
        "killed": sum(1 for t in done if t.killed),
        "kill_trials": sum(1 for t in done if t.kind == "kill"),
        "mismatches": sum(1 for t in done if t.problems),
        "duplicate_keys": sum(sum(t.duplicates.values()) for t in done),
        "decisions": sum(t.decisions for t in done),
        "decisions_lost": sum(t.decisions_lost for t in done),
        "reader_errors": sum(t.reader_errors for t in done),
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": cpu_seconds(),
        **extra,
        "reference_step_s": {k: asdict(v) for k, v in c.times.items()},
        "check_s": c.check_s,
        "steps_not_run": c.not_run,
        "seeded_qas": c.seeded_qas,
        "failures": [asdict(t) for t in done if not t.ok],
        "results": [asdict(t) for t in done],
    }


def print_text(report: dict) -> None:
    print(
        f"fault campaign: {report['trials']} trials in {report['wall_s']} s wall, "
        f"{report['cpu_s']} s CPU ({report['mode']}, {report['jobs']} at a time, "
        f"load {report['load_start']} -> {report['load_end']})"
    )
    print(
        "reference seconds (start-up + work): "
        + ", ".join(f"{k} {v['open']}+{v['work']}" for k, v in report["reference_step_s"].items())
    )
    for t in report["results"]:
        ok = (
            "ok  "
            if not any(t[k] for k in ("problems", "duplicates", "decisions_lost"))
            else "FAIL"
        )
        extra = f"killed={t['killed']} {t['delay_s']} s into the run" if t["kind"] == "kill" else ""
        if t["kind"] == "race":
            extra = f"decisions {t['decisions']}, reads {t['reader_reads']}"
        print(f"  {ok} {t['trial']:<22} {t['seconds']:>6.1f} s  {extra}")
        for problem in t["problems"]:
            print(f"         - {problem}")
    keys = ("trials", "killed", "skipped_for_time", "mismatches", "duplicate_keys")
    for key in (*keys, "decisions", "decisions_lost", "reader_errors", "wall_s", "cpu_s"):
        print(f"{key}: {report[key]}")
