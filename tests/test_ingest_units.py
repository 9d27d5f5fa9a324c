"""Unit tests of the ingest building blocks: MCQ conventions, caption and image checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from microvqa_tui.config import IngestSettings
from microvqa_tui.errors import ValidationError
from microvqa_tui.ingest import mcq, reasons
from microvqa_tui.ingest.validate import ImageInfo, Problem, check_caption, check_image
from microvqa_tui.ingest.webdataset import split_key

SETTINGS = IngestSettings(min_caption_chars=3, max_caption_chars=50)


@pytest.mark.parametrize(
    ("choices", "expected", "stripped"),
    [
        (["1) a", "2) b", "3) c"], ["a", "b", "c"], True),
        (["A. x", "B. y"], ["x", "y"], True),
        (["(a) x", "(b) y"], ["x", "y"], True),
        (["0: x", "1: y"], ["x", "y"], True),
        (["A)x", "B)y"], ["x", "y"], True),
        (["5. µm", "10 µm"], ["5. µm", "10 µm"], False),
        (["A. thaliana", "C. elegans"], ["A. thaliana", "C. elegans"], False),
        (["1) a", "3) b"], ["1) a", "3) b"], False),
        (["1) a", "B) b"], ["1) a", "B) b"], False),
        ([" plain ", "text"], ["plain", "text"], False),
    ],
)
def test_strip_labels(choices, expected, stripped):
    assert mcq.strip_labels(choices) == (expected, stripped)


@pytest.mark.parametrize("answer", ["beta", "Beta.", "2) beta", "B", "(b)", "2", "b)"])
def test_answer_forms_match_position_1(answer):
    assert mcq.answer_matches(answer, "2) beta", "beta", 1)


@pytest.mark.parametrize("answer", ["alpha", "A", "1", "3) gamma"])
def test_other_answers_do_not_match(answer):
    assert not mcq.answer_matches(answer, "2) beta", "beta", 1)


def _rows(*rows):
    return [(i, *row) for i, row in enumerate(rows)]


def test_decide_base_zero_and_one():
    choices = ["a", "b", "c"]
    zero = mcq.decide_index_base(_rows((choices, 1, "b"), (choices, 2, "c")), "f")
    assert (zero.base, zero.ambiguous) == (0, False)
    one = mcq.decide_index_base(_rows((choices, 1, "a"), (choices, 3, "c")), "f")
    assert (one.base, one.ambiguous) == (1, False)
    unsure = mcq.decide_index_base(_rows((choices, 1, None), (choices, 2, None)), "f")
    assert (unsure.base, unsure.ambiguous) == (0, True)
    # malformed rows are left to the reader
    skipped = mcq.decide_index_base(_rows((None, 1, "x"), ("abc", 0, "a"), (choices, 0, "a")), "f")
    assert (skipped.base, skipped.rows) == (0, 1)


def test_parse_choices():
    assert mcq.parse_choices('["a", "b"]', "1") == (["a", "b"], 1)
    assert mcq.parse_choices(("a", "b"), 0.0) == (["a", "b"], 0)
    for choices, index in (("a, b", 0), (["a"], 0), (["a", ""], 0), (["a", "b"], True)):
        assert isinstance(mcq.parse_choices(choices, index), mcq.RowProblem)


def test_decide_base_refuses_disagreement_naming_file_and_row():
    choices = ["a", "b", "c"]
    rows = _rows((choices, 1, "b"), (choices, 2, "c"), (choices, 0, "c"))
    with pytest.raises(ValidationError) as info:
        mcq.decide_index_base(rows, "/data/set.parquet")
    message = str(info.value)
    assert message.startswith("/data/set.parquet: row 2: correct_index 0 (0-based) points")
    assert "'a'" in message and "'c'" in message
    assert "2 of 3 rows fit 0-based" in message


@pytest.mark.parametrize(
    ("raw", "result"),
    [
        (None, reasons.MISSING_CAPTION),
        ("", reasons.EMPTY_CAPTION),
        ("  \n\t", reasons.EMPTY_CAPTION),
        ("ab", reasons.CAPTION_TOO_SHORT),
        ("x" * 51, reasons.CAPTION_TOO_LONG),
        (b"F\xe4rbung der Zellen", reasons.CAPTION_NOT_UTF8),
        ("bad \udce4 surrogate", reasons.CAPTION_NOT_UTF8),
        (12, reasons.MALFORMED_ROW),
        (["a"], reasons.MALFORMED_ROW),
    ],
)
def test_caption_problems(raw, result):
    checked = check_caption(raw, SETTINGS)
    assert isinstance(checked, Problem) and checked.reason == result


def test_caption_cleaned():
    assert check_caption("\ufeff  Nuclei in blue. \n".encode(), SETTINGS) == "Nuclei in blue."
    assert check_caption("  Zellkern gefärbt  ", SETTINGS) == "Zellkern gefärbt"


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image", "fmt", "mode"),
    [
        (Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64)), "TIFF", "I;16"),
        (Image.new("RGB", (64, 48), "red"), "WEBP", "RGB"),
        (Image.new("P", (64, 48)), "GIF", "P"),
        (Image.new("RGB", (64, 48)), "BMP", "RGB"),
        (Image.new("L", (64, 48)), "JPEG", "L"),
    ],
)
def test_accepted_formats(image, fmt, mode):
    info = check_image(_encode(image, fmt), SETTINGS)
    assert info == ImageInfo(64, 48, fmt, mode)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", reasons.CORRUPT_IMAGE),
        (b"%PDF-1.7 not an image", reasons.UNSUPPORTED_FORMAT),
        (b"\x89PNG\r\n\x1a\n\x00\x00", reasons.CORRUPT_IMAGE),
        (_encode(Image.new("RGB", (8, 8)), "ICO"), reasons.UNSUPPORTED_FORMAT),
    ],
)
def test_bad_images(data, reason):
    checked = check_image(data, SETTINGS)
    assert isinstance(checked, Problem) and checked.reason == reason


def test_truncated_png_is_corrupt():
    rng = np.random.default_rng(0)
    data = _encode(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), "PNG")
    checked = check_image(data[: len(data) // 2], SETTINGS)
    assert isinstance(checked, Problem) and checked.reason == reasons.CORRUPT_IMAGE


def test_webdataset_keys():
    assert split_key("a/b/PMC1_fig2.jpg") == ("a/b/PMC1_fig2", "jpg")
    assert split_key("x.seg.PNG") == ("x", "seg.png")
    assert split_key("noext") == ("noext", "")
