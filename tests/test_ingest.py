"""Ingest end to end on real small data: every source kind, idempotence, resume after cancel,
quarantine of bad input, MicroVQA / MicroVQA++ imports."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from microvqa_tui.assets import SAMPLE_MANIFEST
from microvqa_tui.errors import Cancelled, IngestError, ValidationError
from microvqa_tui.ingest import ingest_source, resolve_source
from microvqa_tui.progress import CancelToken, RecordingProgress
from store import open_store
from store.ids import content_id, text_id

try:
    from tests import ingest_helpers as h
except ImportError:  # pytest's rootdir-relative import without a tests package
    import ingest_helpers as h  # type: ignore[no-redef]


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "store")


# ---------------------------------------------------------------------- each kind
def test_folder_ingests_pairs_with_sidecars(store, tmp_path):
    root = h.write_folder(tmp_path / "figs", 6)
    progress = RecordingProgress()
    report = ingest_source(store, root, h.settings(), progress=progress)

    assert report.kind == "folder"
    assert (report.read, report.figures_new, report.captions_new) == (6, 6, 6)
    assert report.quarantined == {}
    assert progress.phases == [("ingest folder: figs", 6)]
    assert progress.done == 6

    fid = content_id(h.image_bytes(1, "JPEG"))
    figure = store.get("figures", fid)
    assert figure["source_kind"] == "folder"
    assert figure["source"] == str(root.resolve())
    assert figure["source_ref"] == "sub/fig1.jpg"
    assert (figure["width"], figure["height"], figure["format"], figure["mode"]) == (
        32,
        24,
        "JPEG",
        "RGB",
    )
    assert figure["image_bytes"] == h.image_bytes(1, "JPEG")
    assert figure["byte_size"] == len(figure["image_bytes"])
    assert (figure["original_id"], figure["article_id"], figure["license"]) == (
        "F1",
        "PMC1",
        "CC-BY-4.0",
    )
    assert json.loads(figure["meta_json"]) == {"stain": "DAPI"}
    assert figure["run_id"] == report.run_id
    cap = store.get("captions", text_id(fid, h.caption(1)))
    assert cap["text"] == h.caption(1)
    assert cap["figure_id"] == fid


def test_manifest_jsonl_keeps_extra_fields(store, tmp_path):
    path = h.write_manifest(tmp_path / "m", 5)
    report = ingest_source(store, path, h.settings())
    assert (report.kind, report.figures_new, report.captions_new) == ("manifest", 5, 5)
    figure = store.get("figures", content_id(h.image_bytes(1002)))
    assert figure["source"] == str(path.resolve())
    assert figure["source_ref"] == "line 3"
    assert (figure["original_id"], figure["article_id"], figure["attribution"]) == (
        "M2",
        "PMC1",
        "tests",
    )
    assert json.loads(figure["meta_json"]) == {
        "consistent": True,
        "inconsistency": "",
        "modality": "fluorescence",
        "panels": 1,
        "source": "synthetic",
    }


def test_manifest_csv(store, tmp_path):
    path = h.write_csv_manifest(tmp_path / "c", 4)
    report = ingest_source(store, path, h.settings())
    assert (report.kind, report.figures_new, report.captions_new) == ("manifest", 4, 4)
    fid = content_id(h.image_bytes(2001))
    assert store.get("captions", text_id(fid, h.caption(1) + ", with a comma")) is not None
    figure = store.get("figures", fid)
    assert figure["source_ref"] == "row 2"
    assert json.loads(figure["meta_json"]) == {"stain": "hoechst"}


def test_sample_assets_ingest(store):
    sample = SAMPLE_MANIFEST
    if not sample.is_file():
        pytest.skip("no embedded sample")
    rows = [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]
    report = ingest_source(store, sample.parent, h.settings(batch_size=64))
    assert report.kind == "manifest"
    assert report.quarantined == {}
    assert report.figures_new == len(
        {content_id((sample.parent / r["image"]).read_bytes()) for r in rows}
    )
    assert report.captions_new == len(rows)


def test_parquet_figure_caption_pairs(store, tmp_path):
    path = h.write_caption_parquet(tmp_path / "pairs.parquet", 7)
    report = ingest_source(store, path, h.settings())
    assert (report.kind, report.read, report.figures_new, report.captions_new) == (
        "parquet",
        7,
        7,
        7,
    )
    assert report.mcqs_new == 0
    figure = store.get("figures", content_id(h.image_bytes(3004, "JPEG")))
    assert (figure["source_ref"], figure["article_id"], figure["image_path"]) == (
        "row 4",
        "PMC3004",
        "img3004.jpg",
    )
    assert json.loads(figure["meta_json"]) == {"figure_type": "micrograph"}


@pytest.mark.parametrize("form", ["file", "folder", "glob"])
def test_webdataset_shards(store, tmp_path, form):
    folder = h.write_shards(tmp_path / "wds", 12, per_shard=5)
    target = {
        "file": folder / "shard-0000.tar",
        "folder": folder,
        "glob": str(folder / "shard-*.tar"),
    }[form]
    expected = 5 if form == "file" else 12
    progress = RecordingProgress()
    report = ingest_source(store, target, h.settings(), progress=progress)
    assert (report.kind, report.figures_new, report.captions_new) == (
        "webdataset",
        expected,
        expected,
    )
    assert progress.phases[0][1] == expected  # uncompressed shards: total known up front
    figure = store.get("figures", content_id(h.image_bytes(6001, "JPEG")))
    assert (figure["source_ref"], figure["article_id"], figure["license"]) == (
        "sample0001",
        "PMC1",
        "CC-BY-4.0",
    )
    assert figure["image_path"].endswith("shard-0000.tar::sample0001.jpg")
    assert json.loads(figure["meta_json"]) == {"figure_type": "microscopy"}
    # .txt captions (every third sample) work too
    txt_fid = content_id(h.image_bytes(6002, "JPEG"))
    assert store.get("captions", text_id(txt_fid, h.caption(6002))) is not None


def test_compressed_shard_streams(store, tmp_path):
    plain = h.write_shard(tmp_path / "a.tar", h.wds_samples(4))
    gz = tmp_path / "a.tar.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    progress = RecordingProgress()
    report = ingest_source(store, gz, h.settings(), progress=progress)
    assert report.figures_new == 4
    assert progress.phases[0][1] is None  # unknown without decompressing twice


# ---------------------------------------------------------------------- detection
def test_kind_detection_and_forcing(tmp_path):
    h.write_folder(tmp_path / "folder", 2)
    h.write_manifest(tmp_path / "man", 2)
    h.write_caption_parquet(tmp_path / "pq" / "data" / "train-0.parquet", 2)
    h.write_shards(tmp_path / "wds", 2)
    assert resolve_source(tmp_path / "folder").kind == "folder"
    assert resolve_source(tmp_path / "man").kind == "manifest"
    assert resolve_source(tmp_path / "man" / "manifest.jsonl").kind == "manifest"
    assert resolve_source(tmp_path / "pq").kind == "parquet"
    assert resolve_source(tmp_path / "wds").kind == "webdataset"
    assert resolve_source(tmp_path / "man", kind="folder").kind == "folder"
    with pytest.raises(IngestError, match="no such file"):
        resolve_source(tmp_path / "nope")
    with pytest.raises(IngestError, match="unknown source kind"):
        resolve_source(tmp_path / "folder", kind="zip")
    (tmp_path / "notes.doc").write_text("x")
    with pytest.raises(IngestError, match="cannot tell"):
        resolve_source(tmp_path / "notes.doc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no images"):
        resolve_source(tmp_path / "empty")


def test_forced_manifest_folder_as_folder_quarantines_uncaptioned(store, tmp_path):
    root = tmp_path / "m"
    h.write_manifest(root, 3)
    report = ingest_source(store, root, h.settings(), kind="folder")
    assert report.kind == "folder"
    assert report.figures_new == 0
    assert report.quarantined == {"missing_caption": 3}


# ---------------------------------------------------------------------- idempotence
def _make_source(kind: str, tmp_path: Path) -> Path:
    if kind == "folder":
        return h.write_folder(tmp_path / "f", 9)
    if kind == "manifest":
        return h.write_manifest(tmp_path / "m", 9)
    if kind == "parquet":
        return h.write_microvqa_pp(tmp_path / "pp.parquet", 9)
    return h.write_shards(tmp_path / "w", 9, per_shard=4)


@pytest.mark.parametrize("kind", ["folder", "manifest", "parquet", "webdataset"])
def test_reingest_adds_zero_rows(store, tmp_path, kind):
    source = _make_source(kind, tmp_path)
    first = ingest_source(store, source, h.settings())
    assert first.figures_new == 9
    before = h.snapshot(store)
    second = ingest_source(store, source, h.settings())
    assert (second.figures_new, second.captions_new, second.mcqs_new, second.quarantine_new) == (
        0,
        0,
        0,
        0,
    )
    assert second.read == first.read
    assert h.snapshot(store) == before
    runs = store.page("runs", columns=["status", "counts_json"], limit=10)
    assert sorted(r["status"] for r in runs) == ["done", "done"]


@pytest.mark.parametrize("kind", ["folder", "parquet", "webdataset"])
def test_cancelled_run_resumes_to_the_uninterrupted_result(tmp_path, kind):
    source = _make_source(kind, tmp_path / "src")
    # a few bad records too, so quarantine rows are part of the comparison
    if kind == "folder":
        (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        (source / "broken.txt").write_text("A broken image with a caption.")
        (source / "lonely.png").write_bytes(h.image_bytes(77))
    reference = open_store(tmp_path / "reference")
    ingest_source(reference, source, h.settings(batch_size=3))

    store = open_store(tmp_path / "store")
    token = CancelToken()
    progress = h.CancelAfterFirstBatch(token)
    with pytest.raises(Cancelled) as info:
        ingest_source(store, source, h.settings(batch_size=3), progress=progress, cancel=token)
    partial = info.value.report
    assert partial.cancelled
    assert progress.done == 3  # exactly one batch written
    assert 0 < store.count("figures") < reference.count("figures")
    runs = store.page("runs", columns=["status", "counts_json"], limit=10)
    assert [r["status"] for r in runs] == ["cancelled"]
    assert json.loads(runs[0]["counts_json"])["read"] >= 3

    resumed = ingest_source(store, source, h.settings(batch_size=3))
    assert resumed.figures_new == reference.count("figures") - partial.figures_new
    assert h.snapshot(store) == h.snapshot(reference)
    for table in h.TABLES:
        assert store.count(table) == reference.count(table)


_KILLED_CHILD = """
import sys, time
from pathlib import Path
from microvqa_tui.config import IngestSettings
from microvqa_tui.ingest import ingest_source
from microvqa_tui.progress import RecordingProgress
from store import open_store

class Stall(RecordingProgress):
    def advance(self, amount=1):
        Path(sys.argv[3]).write_text("one batch written")
        time.sleep(600)

ingest_source(open_store(sys.argv[1]), sys.argv[2], IngestSettings(batch_size=3, workers=2),
              progress=Stall())
"""


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    source = h.write_shards(tmp_path / "src", 10, per_shard=4)
    reference = open_store(tmp_path / "reference")
    ingest_source(reference, source, h.settings(batch_size=3))

    flag = tmp_path / "flag"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, str(tmp_path / "store"), str(source), str(flag)],
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        deadline = time.monotonic() + 120
        while not flag.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), "the child never wrote a batch"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    store = open_store(tmp_path / "store")
    assert 0 < store.count("figures") < reference.count("figures")
    assert [r["status"] for r in store.page("runs", columns=["status"])] == ["running"]
    ingest_source(store, source, h.settings(batch_size=3))
    assert h.snapshot(store) == h.snapshot(reference)
    for table in h.TABLES:
        assert store.count(table) == reference.count(table)


# ---------------------------------------------------------------------- bad input
def _jpeg(seed: int, size=(64, 48)) -> bytes:
    return h.image_bytes(seed, "JPEG", size)


def _flat_png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 128).save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_folder_inputs_are_quarantined(store, tmp_path):
    root = h.write_folder(tmp_path / "bad", 4)  # fig0..fig3 are good
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    (root / "corrupt.txt").write_text("A corrupt image, caption fine.")
    full = _jpeg(50)
    (root / "truncated.jpg").write_bytes(full[: len(full) * 2 // 3])
    (root / "truncated.txt").write_text("A truncated JPEG with a caption.")
    (root / "bomb_warn.png").write_bytes(_flat_png((120, 100)))  # 12,000 px
    (root / "bomb_warn.txt").write_text("Over the pixel limit (warning range).")
    (root / "bomb_err.png").write_bytes(_flat_png((160, 160)))  # 25,600 px
    (root / "bomb_err.txt").write_text("Over twice the pixel limit.")
    ppm = io.BytesIO()
    Image.new("RGB", (8, 8)).save(ppm, format="PPM")
    (root / "ppm.png").write_bytes(ppm.getvalue())
    (root / "ppm.txt").write_text("A PPM file under a .png name.")
    (root / "vector.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "vector.txt").write_text("A vector drawing, not supported.")
    (root / "huge.png").write_bytes(h.image_bytes(53, size=(90, 90)))  # > max_image_bytes
    (root / "huge.txt").write_text("Too many bytes.")
    (root / "empty.png").write_bytes(h.image_bytes(54))
    (root / "empty.txt").write_text("   \n")
    (root / "short.png").write_bytes(h.image_bytes(55))
    (root / "short.txt").write_text("ab")
    (root / "latin1.png").write_bytes(h.image_bytes(56))
    (root / "latin1.txt").write_bytes("Färbung mit DAPI".encode("latin-1"))
    (root / "long.png").write_bytes(h.image_bytes(57))
    (root / "long.txt").write_text("x" * 300)
    (root / "nocaption.png").write_bytes(h.image_bytes(58))
    (root / "orphan.txt").write_text("A caption whose image went missing.")
    (root / "badjson.png").write_bytes(h.image_bytes(59))
    (root / "badjson.json").write_text("{caption: oops")
    (root / "wrongtype.png").write_bytes(h.image_bytes(60))
    (root / "wrongtype.json").write_text(json.dumps({"caption": ["a", "list"]}))

    report = ingest_source(
        store,
        root,
        h.settings(max_pixels=10_000, max_caption_chars=200, max_image_bytes=20_000),
    )
    expected = {
        "corrupt.png": "corrupt_image",
        "truncated.jpg": "corrupt_image",
        "bomb_warn.png": "image_too_large",
        "bomb_err.png": "image_too_large",
        "ppm.png": "unsupported_format",
        "vector.svg": "unsupported_format",
        "huge.png": "file_too_large",
        "empty.png": "empty_caption",
        "short.png": "caption_too_short",
        "latin1.png": "caption_not_utf8",
        "long.png": "caption_too_long",
        "nocaption.png": "missing_caption",
        "orphan.txt": "missing_file",
        "badjson.png": "malformed_row",
        "wrongtype.png": "malformed_row",
    }
    assert h.quarantine_by_ref(store) == expected
    assert report.figures_new == 4
    assert report.captions_new == 4
    assert sum(report.quarantined.values()) == len(expected)
    assert report.quarantined["corrupt_image"] == 2
    assert report.quarantined["image_too_large"] == 2
    row = store.page("quarantine", where="ref = 'truncated.jpg'", limit=1)[0]
    assert row["stage"] == "ingest"
    assert row["source"] == str(root.resolve())
    assert "truncated" in row["detail"]
    assert row["payload"].startswith("A truncated JPEG")
    # the pixel limit is restored after the run
    assert Image.MAX_IMAGE_PIXELS != 10_000


def test_bad_manifest_rows_are_quarantined(store, tmp_path):
    root = tmp_path / "m"
    (root / "images").mkdir(parents=True)
    good = [h.manifest_row(i, f"images/g{i}.png") for i in range(3)]
    for i in range(3):
        (root / "images" / f"g{i}.png").write_bytes(h.image_bytes(700 + i))
    (root / "images" / "x.png").write_bytes(h.image_bytes(710))
    lines = [json.dumps(good[0]).encode()]
    lines.append(b'{"image": "images/x.png", "caption": ')  # line 2: bad JSON
    lines.append(json.dumps([1, 2]).encode())  # line 3: not an object
    lines.append(json.dumps({"image": 5, "caption": "An int path."}).encode())  # 4
    lines.append(json.dumps({"image": "images/missing.png", "caption": "Gone."}).encode())
    lines.append(b'{"image": "images/x.png", "caption": "F\xe4rbung"}')  # 6: latin-1 byte
    lines.append(json.dumps({"image": "images/x.png", "caption": 42}).encode())  # 7
    lines.append(
        json.dumps({"image": "images/x.png", "id": {"a": 1}, "caption": "Dict id"}).encode()
    )
    lines.append(json.dumps({"caption": "No image key at all."}).encode())  # 9
    lines.append(json.dumps(good[1]).encode())
    lines.append(b"")
    lines.append(json.dumps(good[2]).encode())  # line 12
    (root / "manifest.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    report = ingest_source(store, root, h.settings())
    assert h.quarantine_by_ref(store) == {
        "line 2": "malformed_row",
        "line 3": "malformed_row",
        "line 4": "malformed_row",
        "line 5": "missing_file",
        "line 6": "caption_not_utf8",
        "line 7": "malformed_row",
        "line 8": "malformed_row",
        "line 9": "malformed_row",
    }
    assert (report.read, report.figures_new, report.captions_new) == (11, 3, 3)


def test_bad_csv_rows_are_quarantined(store, tmp_path):
    root = tmp_path / "c"
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.png").write_bytes(h.image_bytes(800))
    (root / "img" / "b.png").write_bytes(h.image_bytes(801))
    (root / "pairs.csv").write_text(
        "image,caption\n"
        "img/a.png,A good CSV caption.\n"
        "img/b.png,too,many,fields\n"
        "img/b.png,\n"
        "img/b.png,Another good caption.\n"
    )
    report = ingest_source(store, root / "pairs.csv", h.settings())
    assert h.quarantine_by_ref(store) == {"row 2": "malformed_row", "row 3": "empty_caption"}
    assert report.figures_new == 2


def test_csv_without_image_column_is_refused(store, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("picture,caption\na.png,hello there\n")
    with pytest.raises(IngestError, match="no image column"):
        ingest_source(store, path, h.settings())


def test_bad_tar_members_are_quarantined(store, tmp_path):
    shard = tmp_path / "wds" / "shard-0.tar"
    shard.parent.mkdir()
    good = h.wds_samples(3)
    with tarfile.open(shard, "w") as tf:
        for key, members in good[:2]:
            for ext, data in members.items():
                h.tar_member(tf, f"{key}.{ext}", data)
        h.tar_member(tf, "/abs/evil.jpg", _jpeg(90))
        h.tar_member(tf, "../escape.jpg", _jpeg(91))
        h.tar_member(tf, "deep/../../escape2.json", b"{}")
        h.tar_member(tf, "link.jpg", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        h.tar_member(tf, "corrupt.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 50)
        h.tar_member(tf, "corrupt.txt", b"A corrupt JPEG in a shard.")
        h.tar_member(tf, "nocap.png", h.image_bytes(92))
        h.tar_member(tf, "capnoimg.json", json.dumps({"caption": "Where is my image?"}).encode())
        h.tar_member(tf, "badjson.jpg", _jpeg(93))
        h.tar_member(tf, "badjson.json", b"{not json")
        h.tar_member(tf, "latin.jpg", _jpeg(94))
        h.tar_member(tf, "latin.txt", "Zellkern gefärbt".encode("latin-1"))
        h.tar_member(tf, "only.cls", b"3")
        for ext, data in good[2][1].items():
            h.tar_member(tf, f"{good[2][0]}.{ext}", data)
    # a second shard cut off in the middle of a member: what precedes the cut lands
    cut = h.write_shard(tmp_path / "wds" / "shard-1.tar", h.wds_samples(3, start=10))
    with tarfile.open(cut) as tf:
        offset = tf.getmember("sample0012.jpg").offset_data
    cut.write_bytes(cut.read_bytes()[: offset + 100])

    report = ingest_source(store, tmp_path / "wds", h.settings())
    quarantined = h.quarantine_by_ref(store)
    assert quarantined == {
        "/abs/evil.jpg": "unsafe_path",
        "../escape.jpg": "unsafe_path",
        "deep/../../escape2.json": "unsafe_path",
        "link.jpg": "unsafe_path",
        "corrupt": "corrupt_image",
        "nocap": "missing_caption",
        "capnoimg": "missing_file",
        "badjson": "malformed_row",
        "latin": "caption_not_utf8",
        "sample0012": "unreadable_source",
    }
    landed = store.ids("figures")
    for i in (0, 1, 2, 10, 11):
        assert content_id(h.image_bytes(6000 + i, "JPEG")) in landed
    assert report.figures_new == 5
    # nothing was extracted next to the shards
    assert sorted(p.name for p in (tmp_path / "wds").iterdir()) == ["shard-0.tar", "shard-1.tar"]
    assert not (tmp_path / "escape.jpg").exists()


def test_bad_parquet_rows_are_quarantined(store, tmp_path):
    path = h.write_parquet(
        tmp_path / "bad.parquet",
        {
            "image": [
                h.image_struct(900),
                {"bytes": None, "path": None},
                {"bytes": b"\xff\xd8\xffjunk", "path": "x.jpg"},
                h.image_struct(903),
                {"bytes": None, "path": "side.png"},
                None,
            ],
            "caption": [h.caption(900), h.caption(901), h.caption(902), None, h.caption(904), "c"],
        },
        {"image": h.IMAGE_STRUCT, "caption": pa.string()},
    )
    (tmp_path / "side.png").write_bytes(h.image_bytes(904))  # path-only struct: read beside
    report = ingest_source(store, path, h.settings())
    assert h.quarantine_by_ref(store) == {
        "row 1": "missing_file",
        "row 2": "corrupt_image",
        "row 3": "missing_caption",
        "row 5": "missing_file",
    }
    assert report.figures_new == 2
    assert content_id(h.image_bytes(904)) in store.ids("figures")


# ---------------------------------------------------------------------- MCQ imports
def _mcqs(store) -> list[dict]:
    return sorted(
        store.page("mcqs", limit=1000), key=lambda r: json.loads(r["params_json"])["source_row"]
    )


@pytest.mark.parametrize(
    ("one_based", "prefix", "answer"),
    [
        (False, None, "text"),
        (True, None, "text"),
        (True, "num", "labelled"),
        (True, "num", "text"),
        (False, "letter", "label"),
        (True, "letter", "labelled"),
    ],
)
def test_microvqa_pp_layout_imports(store, tmp_path, one_based, prefix, answer):
    path = h.write_microvqa_pp(
        tmp_path / "pp.parquet", 6, one_based=one_based, prefix=prefix, answer=answer
    )
    report = ingest_source(store, path, h.settings())
    assert (report.figures_new, report.captions_new, report.mcqs_new) == (6, 6, 6)
    assert report.quarantined == {}
    for i, row in enumerate(_mcqs(store)):
        position = (i % 3) + 1
        assert row["choices"] == h.CHOICES
        assert row["correct_index"] == position
        assert row["correct_answer"] == h.CHOICES[position]
        assert (row["family"], row["origin"]) == ("imported", "imported")
        assert row["task_str"] == "expert_visual_understanding"
        assert row["cot"] == f"Reasoning {i}."
        fid = content_id(h.image_bytes(4000 + i, "JPEG"))
        assert row["figure_id"] == fid
        assert row["image_ids"] == [fid]
        params = json.loads(row["params_json"])
        assert params["index_base"] == (1 if one_based else 0)
        assert params["labels_stripped"] == (prefix is not None)
        assert params["caption_id"] == text_id(fid, h.caption(4000 + i))
        figure = store.get("figures", fid, columns=["original_id", "meta_json"])
        assert figure["original_id"] == f"pp_{4000 + i}"
        assert json.loads(figure["meta_json"]) == {"images_source": "pmc"}


def test_microvqa_without_answer_column_uses_index_range(store, tmp_path):
    # indices 1..3 of 4 choices fit both readings: assumed 0-based, and said so
    path = h.write_microvqa_pp(tmp_path / "pp.parquet", 3, answer="none")
    progress = RecordingProgress()
    report = ingest_source(store, path, h.settings(), progress=progress)
    assert report.mcqs_new == 3
    assert any("assuming 0-based" in line for line in progress.lines)
    # an index equal to the number of choices settles it: 1-based
    store2 = open_store(tmp_path / "s2")
    path2 = h.write_microvqa_pp(tmp_path / "pp1.parquet", 3, one_based=True, answer="none")
    ingest_source(store2, path2, h.settings())
    assert sorted(r["correct_index"] for r in _mcqs(store2)) == [1, 2, 3]


def test_microvqa_benchmark_multi_image(store, tmp_path):
    path = h.write_microvqa(tmp_path / "microvqa.parquet", 5, images_per_row=2)
    report = ingest_source(store, path, h.settings())
    assert (report.figures_new, report.captions_new, report.mcqs_new) == (10, 5, 5)
    for i, row in enumerate(_mcqs(store)):
        base = 5000 + 10 * i
        fids = [content_id(h.image_bytes(base + j, "JPEG")) for j in range(2)]
        assert row["image_ids"] == fids
        assert row["figure_id"] == fids[0]
        assert row["correct_index"] == i % 4
        assert row["correct_answer"] == h.CHOICES[i % 4]
        assert row["task_str"] == "hypothesis_generation"
        params = json.loads(row["params_json"])
        assert (params["key_question"], params["task"]) == (100 + i, i % 3 + 1)
        second = store.get("figures", fids[1])
        assert second["original_id"] == f"{200 + i}#1"
        assert second["source_ref"] == f"row {i} image 1"
        assert store.get("captions", text_id(fids[0], h.caption(base))) is not None


def test_mcq_row_with_bad_choices_is_quarantined(store, tmp_path):
    path = h.write_parquet(
        tmp_path / "q.parquet",
        {
            "image": [h.image_struct(950), h.image_struct(951), h.image_struct(952)],
            "question": ["Q one?", "Q two?", ""],
            "choices": [["a1", "b1", "c1"], None, ["a3", "b3"]],
            "correct_index": [1, 0, 0],
            "correct_answer": ["b1", "a2", "a3"],
        },
        {
            "image": h.IMAGE_STRUCT,
            "question": pa.string(),
            "choices": pa.list_(pa.string()),
            "correct_index": pa.int64(),
            "correct_answer": pa.string(),
        },
    )
    report = ingest_source(store, path, h.settings())
    assert h.quarantine_by_ref(store) == {"row 1": "malformed_row", "row 2": "malformed_row"}
    assert report.mcqs_new == 1
    assert report.captions_new == 0  # no caption column: MCQ rows need none


def test_disagreeing_file_is_refused_before_writing(store, tmp_path):
    path = h.write_microvqa_pp(tmp_path / "pp_bad.parquet", 6)
    table = pq.read_table(path)
    answers = table.column("correct_answer").to_pylist()
    answers[4] = "a stain nobody listed"
    table = table.set_column(
        table.schema.get_field_index("correct_answer"), "correct_answer", pa.array(answers)
    )
    pq.write_table(table, path)
    good = h.write_caption_parquet(tmp_path / "a_good.parquet", 2)  # sorts first

    with pytest.raises(ValidationError) as info:
        ingest_source(store, tmp_path, h.settings(), kind="parquet")
    message = str(info.value)
    assert "pp_bad.parquet" in message
    assert "row 4" in message
    assert "a stain nobody listed" in message
    assert "0-based" in message
    assert good.exists()
    assert store.count("figures") == 0 and store.count("mcqs") == 0
    runs = store.page("runs", columns=["status", "message"], limit=5)
    assert runs[0]["status"] == "failed"
    assert "pp_bad.parquet" in runs[0]["message"]


def test_mixed_index_conventions_are_refused(store, tmp_path):
    path = h.write_parquet(
        tmp_path / "mixed.parquet",
        {
            "image": [h.image_struct(960), h.image_struct(961)],
            "question": ["First?", "Second?"],
            "choices": [["a", "b", "c"], ["d", "e", "f"]],
            "correct_index": [0, 3],  # 0 only fits 0-based, 3 only 1-based
        },
        {
            "image": h.IMAGE_STRUCT,
            "question": pa.string(),
            "choices": pa.list_(pa.string()),
            "correct_index": pa.int64(),
        },
    )
    with pytest.raises(
        ValidationError, match=r"mixed\.parquet: row 1: correct_index 3 is out of range"
    ):
        ingest_source(store, path, h.settings())
    assert store.count("figures") == 0


def test_run_is_recorded_with_counts(store, tmp_path):
    root = h.write_folder(tmp_path / "f", 3)
    (root / "lonely.png").write_bytes(h.image_bytes(99))
    report = ingest_source(store, root, h.settings())
    run = store.get("runs", report.run_id)
    assert run["step"] == "ingest" and run["status"] == "done"
    counts = json.loads(run["counts_json"])
    assert counts["read"] == 4
    assert counts["figures_new"] == 3
    assert counts["captions_new"] == 3
    assert counts["mcqs_new"] == 0
    assert counts["quarantined"] == {"missing_caption": 1}
    assert json.loads(run["config_json"])["kind"] == "folder"
    data = report.to_dict()
    assert data["quarantined_total"] == 1
    assert set(data) >= {
        "run_id",
        "kind",
        "read",
        "figures_new",
        "captions_new",
        "mcqs_new",
        "quarantined",
        "elapsed_s",
    }


def test_keep_image_bytes_off_keeps_the_path(store, tmp_path):
    root = h.write_folder(tmp_path / "f", 2)
    ingest_source(store, root, h.settings(keep_image_bytes=False))
    figure = store.get("figures", content_id(h.image_bytes(0)))
    assert figure["image_bytes"] is None
    assert figure["image_path"] == str((root / "fig0.png").resolve())
    assert figure["byte_size"] == len(h.image_bytes(0))
