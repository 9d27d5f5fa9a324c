"""The LanceDB persistence layer: schemas, tables, writes and queries.

Nothing here imports Textual or the pipeline: the store is usable from any script.
"""

from store.db import Store, open_store
from store.ids import content_id, text_id

__all__ = ["Store", "content_id", "open_store", "text_id"]
