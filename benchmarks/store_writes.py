"""Cost of the store's write rules: owned-column updates and the per-table write lock.

    python benchmarks/store_writes.py            # 100,000 QAs, 200 small batches
    python benchmarks/store_writes.py --n 20000 --json

* `update_columns` (merge on the key, three columns) against the whole-row read + upsert that
  steps used before (which could revert a concurrent review);
* `Store.insert_new` of small batches (write lock + checkout of the latest version) against
  the bare merge-insert on one table handle (which could write duplicate keys when two
  processes ingest at once).

Figures are wall seconds on this machine and their ratio; run it twice when the machine is
shared.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from store import open_store, writes
from store.schema import utcnow


def qa_rows(n: int) -> pa.Table:
    now = utcnow()
    rows = [
        {
            "qa_id": f"q{i:07d}",
            "figure_id": f"f{i // 3}",
            "question": f"What is marked in panel {i}?",
            "answer": "the basal layer",
            "task_type": "expert_visual_understanding",
            "origin": "stage1",
            "created_at": now,
        }
        for i in range(n)
    ]
    return writes.to_arrow("qas", rows)


def timed(fn) -> float:
    clock = time.perf_counter()
    fn()
    return round(time.perf_counter() - clock, 3)


def measure(folder: Path, n: int, batches: int) -> dict[str, float]:
    data = qa_rows(n)
    store = open_store(folder / "update")
    store.insert_new("qas", data)
    whole = timed(lambda: store.upsert("qas", store.arrow("qas")))
    owned = pa.table(
        {
            "qa_id": data.column("qa_id"),
            "status": pa.array(["kept"] * n),
            "reason": pa.array([""] * n),
            "score": pa.array([0.5] * n),
        }
    )
    columns = timed(lambda: store.update_columns("qas", owned, ["status", "reason", "score"]))
    small = [data.slice(i * 10, 10) for i in range(batches)]
    locked_store = open_store(folder / "locked")
    locked_store.insert_new("qas", data.slice(n - 1, 1))
    locked = timed(lambda: [locked_store.insert_new("qas", b) for b in small])
    bare_store = open_store(folder / "bare")
    bare_store.insert_new("qas", data.slice(n - 1, 1))
    tbl = bare_store.table("qas")
    bare = timed(lambda: [writes.insert_new(tbl, "qa_id", b) for b in small])
    return {
        "rows": n,
        "whole_row_upsert_s": whole,
        "update_columns_s": columns,
        "small_batches": batches,
        "insert_new_locked_s": locked,
        "insert_new_bare_s": bare,
        "lock_overhead_ratio": round(locked / bare, 3) if bare else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp), args.n, args.batches)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
