"""What every step shares, ingest included: run records, prompt templates, the caption of an
item, funnel rows. Below the pipeline and ingest; imports only the store, config, errors and
the vocabulary."""
