"""The Textual workbench: pipeline, browse, review, duplicates, stats and export screens.

Only this package imports Textual. Screens call the core (store, pipeline, `microvqa_tui.services.review`)
from thread workers and get results back as callbacks or Messages; see `workers.py`.
"""
