"""The vocabulary: one definition of the stored words, agreeing with the prompts that use them."""

from __future__ import annotations

import re
import subprocess
import sys

from microvqa_tui import vocabulary
from microvqa_tui.common.prompts import load_template


def test_bloom_names_are_the_classifier_prompts_levels():
    """The classifier prompt defines the levels the LLM answers with; the names the TUI and
    the selection report show must be the same (5 synthesis, 6 evaluation)."""
    system = load_template("bloom_classify.md").section("system")
    in_prompt = {int(n): name for n, name in re.findall(r"\b([1-6]) ([a-z]+) \(", system)}
    assert in_prompt == vocabulary.BLOOM_LEVELS
    assert vocabulary.bloom_label(5) == "5 Synthesis"
    assert vocabulary.bloom_label(6) == "6 Evaluation"


def test_bloom_label_of_an_unknown_level():
    assert vocabulary.bloom_label(None) == "–"
    assert vocabulary.bloom_label(9) == "9"


def test_every_signal_has_a_direction_and_one_family():
    assert set(vocabulary.SIGNAL_DIRECTIONS) == set(vocabulary.SIGNAL_NAMES)
    assert len(set(vocabulary.SIGNAL_NAMES)) == len(vocabulary.SIGNAL_NAMES)


def test_the_vocabulary_imports_nothing_of_the_project():
    code = (
        "import sys, microvqa_tui.vocabulary;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('microvqa_tui', 'store')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['microvqa_tui', 'microvqa_tui.vocabulary']"
