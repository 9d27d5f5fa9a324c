"""TUI responsiveness on a 100k-MCQ store: key press → rendered page, and app start-up.

    python benchmarks/tui.py                 # builds (once) /tmp/microvqa-bench-tui-100000
    python benchmarks/tui.py --rows 20000 --repeat 10

Measures, headless at 160×48 (latency ends at the first rendered screen update after the new
page is in the table — `App._display`, what a terminal receives):
- paging (`]` / `[`), sorted paging, filter changes (status, tier, Bloom, review, score
  range, text search) in Browse: from the key press (or the filter value set) until the new
  page is in the table and the screen has refreshed;
- review navigation (`j`): next item with its figure, in key order within the filter;
- app start-up: from process start (a fresh Python) until the first Browse page is drawn,
  and until the first paint (the tab bar) — LanceDB is imported in a worker after it.

Targets: page/filter median < 100 ms; start-up < 2 s. Prints medians and p95, and the ratio
to the target (< 1 meets it).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PAGE_TARGET_MS = 100.0
OPEN_TARGET_S = 2.0
TASKS = ("expert_visual_understanding", "hypothesis_generation", "experiment_proposal")
TIERS = ("easy", "medium", "hard")


# ---------------------------------------------------------------------- the store
def build_store(path: Path, rows: int, figures: int = 2000) -> None:
    """Synthetic figures (small PNGs), QAs and MCQs, written in Arrow batches."""
    import pyarrow as pa
    from PIL import Image

    from store import open_store
    from store.schema import arrow_schema

    rnd = random.Random(0)
    store = open_store(path)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (180, 90, 120)).save(buffer, format="PNG")
    png = buffer.getvalue()
    fig_cols = {name: [] for name in arrow_schema("figures").names}
    for i in range(figures):
        values = {
            "figure_id": f"f{i:07d}",
            "content_hash": f"{i:064x}",
            "image_bytes": png,
            "image_path": "",
            "width": 96,
            "height": 64,
            "format": "PNG",
            "mode": "RGB",
            "byte_size": len(png),
            "source_kind": "manifest",
            "source": "synthetic",
            "source_ref": str(i),
            "original_id": f"fig-{i}",
            "article_id": f"PMC{i // 4:06d}",
            "license": "CC0-1.0",
            "attribution": "",
            "meta_json": "{}",
            "ingested_at": now,
            "run_id": "bench",
        }
        for key, value in values.items():
            fig_cols[key].append(value)
    store.append("figures", pa.table(fig_cols, schema=arrow_schema("figures")))
    batch = 20_000
    for start in range(0, rows, batch):
        qa = {name: [] for name in arrow_schema("qas").names}
        mcq = {name: [] for name in arrow_schema("mcqs").names}
        for i in range(start, min(rows, start + batch)):
            figure_id = f"f{i % figures:07d}"
            question = f"Which structure in panel {i} shows mitochondria? ({rnd.random():.4f})"
            for key, value in {
                "qa_id": f"q{i:08d}",
                "figure_id": figure_id,
                "caption_id": "",
                "question": question,
                "answer": "the outer membrane",
                "task_type": TASKS[i % 3],
                "evidence": "",
                "origin": "stage1",
                "model": "bench",
                "prompt_version": "v1",
                "status": "kept" if i % 4 else "held_out",
                "reason": "" if i % 4 else "low graph score",
                "score": rnd.random(),
                "created_at": now,
                "run_id": "bench",
            }.items():
                qa[key].append(value)
            correct = i % 4
            choices = [f"option {k} of {i}" for k in range(4)]
            for key, value in {
                "mcq_id": f"m{i:08d}",
                "qa_id": f"q{i:08d}",
                "figure_id": figure_id,
                "image_ids": [figure_id],
                "question": question,
                "choices": choices,
                "correct_index": correct,
                "correct_answer": choices[correct],
                "cot": "Because the caption says so. " * 3,
                "task_str": TASKS[i % 3],
                "family": "caption",
                "bloom_level": 1 + i % 6,
                "bloom_confidence": rnd.random(),
                "image_free_pass_rate": rnd.random(),
                "pass_rate": rnd.random(),
                "difficulty_tier": TIERS[i % 3],
                "status": rnd.choice(("kept", "kept", "held_out", "pending")),
                "reason": "",
                "review": rnd.choice(("unreviewed", "unreviewed", "accepted", "rejected")),
                "origin": "stage3",
                "model": "bench",
                "params_json": "{}",
                "created_at": now,
                "run_id": "bench",
            }.items():
                mcq[key].append(value)
        store.append("qas", pa.table(qa, schema=arrow_schema("qas")))
        store.append("mcqs", pa.table(mcq, schema=arrow_schema("mcqs")))
    store.optimize()


def ensure_store(rows: int) -> Path:
    path = Path(f"/tmp/microvqa-bench-tui-{rows}")
    marker = path / "BENCH_READY"
    if not marker.exists():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        clock = time.perf_counter()
        print(f"building {rows:,} synthetic MCQs in {path} …", flush=True)
        build_store(path, rows)
        marker.write_text(str(rows))
        print(f"  built in {time.perf_counter() - clock:.1f} s", flush=True)
    return path


# ---------------------------------------------------------------------- measurements
CPU_SAMPLES: list[float] = []  # process CPU ms of the samples being collected


def summary(name: str, samples_ms: list[float], target_ms: float) -> dict:
    """Median and p95 wall time; `cpu_ms` is the median process CPU time per sample (all
    threads): on a busy machine wall time waits for a core, CPU time does not."""
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    cpu = statistics.median(CPU_SAMPLES) if CPU_SAMPLES else float("nan")
    CPU_SAMPLES.clear()
    return {
        "measure": name,
        "n": len(ordered),
        "median_ms": round(median, 1),
        "p95_ms": round(p95, 1),
        "cpu_ms": round(cpu, 1),
        "target_ms": target_ms,
        "ratio": round(median / target_ms, 2),
    }


# Screen updates as a terminal would receive them: `App._display` gets each rendered update
# (headless runs drop it afterwards). Key → page latency ends at the first update after the
# page was put in the table, not when the test harness notices (Pilot waits for the CPU to
# go idle, which adds its own sleeps).
DISPLAYS: list[float] = []
SHOWN: list[float] = []


def hook_rendering() -> None:
    from textual.app import App

    from microvqa_tui.ui.screens import browse, review

    display = App._display

    def recorded_display(self, screen, renderable):
        if renderable is not None:
            DISPLAYS.append(time.perf_counter())
        return display(self, screen, renderable)

    App._display = recorded_display
    for cls, name in ((browse.BrowseScreen, "_show_page"), (review.ReviewScreen, "_show")):
        original = getattr(cls, name)

        def recorded(self, *args, _original=original, **kwargs):
            SHOWN.append(time.perf_counter())
            return _original(self, *args, **kwargs)

        setattr(cls, name, recorded)


def rendered_after(start: float) -> float:
    """Seconds from `start` to the first screen update after the first page shown since."""
    shown = next(t for t in SHOWN if t >= start)
    return next(t for t in DISPLAYS if t >= shown) - start


async def wait_page(pilot, screen, before: int, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while screen.pages_shown == before:
        if time.perf_counter() > deadline:
            raise TimeoutError("page did not arrive")
        await pilot.pause()
    await pilot.pause()  # the refresh that draws it


async def measure_browse(path: Path, repeat: int) -> list[dict]:
    from textual.widgets import Input, Select

    from microvqa_tui.config import load_settings
    from microvqa_tui.ui.app import MicroVQAApp
    from store import open_store

    settings = load_settings(store=path)
    app = MicroVQAApp(settings, store=open_store(path), mode="browse", subtitle="bench")
    results = []
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        while screen.pages_shown == 0:
            await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()

        async def timed(action) -> float:
            before = screen.pages_shown
            cpu, clock = time.process_time(), time.perf_counter()
            await action()
            await wait_page(pilot, screen, before)
            CPU_SAMPLES.append((time.process_time() - cpu) * 1000)
            return rendered_after(clock) * 1000

        async def press(*keys):
            await pilot.press(*keys)

        # Paging forward then back, unsorted (storage order).
        samples = []
        for _ in range(repeat):
            samples.append(await timed(lambda: press("right_square_bracket")))
        for _ in range(repeat):
            samples.append(await timed(lambda: press("left_square_bracket")))
        results.append(summary("page ] / [ (100k, unsorted)", samples, PAGE_TARGET_MS))

        # Jumps to the last page and back.
        samples = []
        for _ in range(max(2, repeat // 4)):
            samples.append(await timed(lambda: press("G")))
            samples.append(await timed(lambda: press("g")))
        results.append(summary("jump to last / first page", samples, PAGE_TARGET_MS))

        # Sorted by pass rate: first pages, LanceDB order_by.
        screen.query_one("#browse-table").focus()
        screen.action_sort("pass_rate")
        await wait_page(pilot, screen, screen.pages_shown - 1)
        await app.workers.wait_for_complete()
        await pilot.pause()
        samples = []
        for _ in range(repeat):
            samples.append(await timed(lambda: press("right_square_bracket")))
        results.append(summary("page ] sorted by pass_rate", samples, PAGE_TARGET_MS))
        screen.action_sort("pass_rate")
        await app.workers.wait_for_complete()
        screen.action_sort("pass_rate")  # back to unsorted
        await app.workers.wait_for_complete()
        await pilot.pause()
        CPU_SAMPLES.clear()

        # Filters: each change is one count + one page query.
        filters = [
            ("#f-status", "kept"),
            ("#f-tier", "hard"),
            ("#f-bloom", 3),
            ("#f-review", "accepted"),
            ("#f-task", "hypothesis_generation"),
        ]
        samples = []
        for _ in range(max(1, repeat // len(filters))):
            for selector, value in filters:
                select = screen.query_one(selector, Select)

                async def set_value(select=select, value=value):
                    select.value = value

                samples.append(await timed(set_value))
            screen.action_clear_filters()
            await app.workers.wait_for_complete()
            await pilot.pause()
        results.append(
            summary("filter change (status/tier/bloom/review/task)", samples, PAGE_TARGET_MS)
        )

        samples = []
        search = screen.query_one("#f-text", Input)
        for i in range(max(3, repeat // 2)):
            search.value = f"panel {1000 + i * 37}"
            search.focus()
            samples.append(await timed(lambda: press("enter")))
        results.append(summary("text search (strpos over 100k questions)", samples, PAGE_TARGET_MS))
    return results


async def measure_review(path: Path, repeat: int) -> list[dict]:
    from microvqa_tui.config import load_settings
    from microvqa_tui.ui.app import MicroVQAApp
    from store import open_store

    settings = load_settings(store=path)
    app = MicroVQAApp(settings, store=open_store(path), mode="review", subtitle="bench")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        await app.workers.wait_for_complete()
        await pilot.pause()
        samples = []
        for _ in range(repeat):
            before = screen.state
            cpu, clock = time.process_time(), time.perf_counter()
            await pilot.press("j")
            while screen.state is before:
                await pilot.pause()
            await pilot.pause()
            CPU_SAMPLES.append((time.process_time() - cpu) * 1000)
            samples.append(rendered_after(clock) * 1000)
    return [summary("review next item (j), with its image", samples, PAGE_TARGET_MS)]


CHILD = r"""
import sys, time, os
T0 = float(sys.argv[1])
sys.path.insert(0, sys.argv[3])
from textual.app import App
from microvqa_tui.config import load_settings
from microvqa_tui.ui.app import MicroVQAApp
marks, writes = {}, []
_display = App._display

def display(self, screen, renderable):
    # A rendered screen update, which a terminal would receive (headless drops it after).
    if renderable is not None:
        writes.append((time.time() - T0, time.process_time()))
    return _display(self, screen, renderable)

App._display = display
import microvqa_tui.ui.screens.browse as browse
_show = browse.BrowseScreen._show_page
shows = []  # (time, cached) of each page put on screen

def show(self, page):
    shows.append((time.time() - T0, page.cached))
    return _show(self, page)

browse.BrowseScreen._show_page = show

def painted_after(t):
    # the first screen update at or after t
    return next(((w, c) for w, c in writes if w >= t), (None, None))

async def auto(pilot):
    app = pilot.app
    screen = app.screen
    while not any(not cached for _, cached in shows):  # until a live read is on screen
        await pilot.pause()
    await pilot.pause()
    app.exit()
    shown, marks["cached"] = shows[0]
    live = next(t for t, cached in shows if not cached)
    marks["first_paint"], marks["first_paint_cpu"] = writes[0]
    marks["first_page"], marks["first_page_cpu"] = painted_after(shown)
    marks["live_page"], marks["live_page_cpu"] = painted_after(live)

app = MicroVQAApp(load_settings(store=sys.argv[2]), mode="browse", subtitle="bench")
app.run(headless=True, size=(160, 48), auto_pilot=auto)
print("MARKS", marks)
"""


def measure_open(path: Path, repeat: int) -> list[dict]:
    """Fresh processes; the first run keeps the first page (`ui.page_cache`), the next ones
    show it before LanceDB has loaded (the table has not changed in between)."""
    first_paint, first_page, paint_cpu, page_cpu = [], [], [], []
    live_page, live_cpu, cached = [], [], []
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROVQA_")}
    for _ in range(repeat):
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(t0), str(path), str(REPO)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        line = next(line for line in out.stdout.splitlines() if line.startswith("MARKS"))
        marks = eval(line[len("MARKS ") :])  # our own child's dict literal
        first_paint.append(marks["first_paint"] * 1000)
        first_page.append(marks["first_page"] * 1000)
        paint_cpu.append(marks["first_paint_cpu"] * 1000)
        page_cpu.append(marks["first_page_cpu"] * 1000)
        live_page.append(marks["live_page"] * 1000)
        live_cpu.append(marks["live_page_cpu"] * 1000)
        cached.append(marks["cached"])
    target = OPEN_TARGET_S * 1000
    CPU_SAMPLES.extend(paint_cpu)
    rows = [summary("app start → first paint (fresh process)", first_paint, target)]
    CPU_SAMPLES.extend(page_cpu)
    n_cached = sum(cached)
    rows.append(
        summary(f"app start → first Browse page ({n_cached}/{repeat} kept)", first_page, target)
    )
    CPU_SAMPLES.extend(live_cpu)
    rows.append(summary("app start → store open, live page read", live_page, target))
    return rows


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'measure':<48} {'n':>4} {'median ms':>10} {'p95 ms':>9} {'cpu ms':>7}"
        f" {'target':>7} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['measure']:<48} {row['n']:>4} {row['median_ms']:>10.1f} {row['p95_ms']:>9.1f}"
            f" {row['cpu_ms']:>7.1f} {row['target_ms']:>7.0f} {row['ratio']:>6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--open-repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument(
        "--only", choices=("browse", "review", "open"), help="run one group of measures"
    )
    args = parser.parse_args()
    path = ensure_store(args.rows)
    hook_rendering()
    rows = []
    if args.only in (None, "browse"):
        rows += asyncio.run(measure_browse(path, args.repeat))
    if args.only in (None, "review"):
        rows += asyncio.run(measure_review(path, args.repeat))
    if args.only in (None, "open"):
        rows += measure_open(path, args.open_repeat)
    print(
        f"\nTUI benchmark on {args.rows:,} MCQs ({path}), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n"
    )
    print_table(rows)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
