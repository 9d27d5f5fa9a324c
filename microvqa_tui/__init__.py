"""microvqa_tui: curate microscopy multiple-choice VQA reasoning datasets on one workstation."""

__version__ = "0.1.0"
