"""The operations the CLI and the TUI share: queries and item details, duplicate groups,
insights, status, review, stats and export. No Textual here: the TUI calls these from
workers, the CLI directly."""
