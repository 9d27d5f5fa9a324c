"""Ingest figure–caption pairs into the store from four kinds of source.

    from microvqa_tui.ingest import ingest_source
    report = ingest_source(store, "figures/", settings.ingest)

Sources: a folder of images with sidecar captions, a JSONL/CSV manifest, Parquet files
(Hugging Face image structs; MicroVQA / MicroVQA++ MCQs are imported too) and WebDataset
tar shards. Modules: records (what readers yield), validate (image and caption checks),
reasons (quarantine codes), one reader per kind (folder, manifest, parquet, webdataset),
mcq (index/choice conventions), detect (kind detection), rows + runner (batches, thread
pools, writes), api (ingest_source, IngestReport).
"""

from microvqa_tui.ingest.api import IngestReport, ingest_source
from microvqa_tui.ingest.detect import Source, resolve_source
from microvqa_tui.ingest.reasons import REASONS
from microvqa_tui.ingest.records import KINDS

__all__ = ["KINDS", "REASONS", "IngestReport", "Source", "ingest_source", "resolve_source"]
