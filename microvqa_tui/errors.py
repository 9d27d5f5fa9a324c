"""One exception hierarchy for the whole tool.

Every error a user can cause or fix is a `MicroVQAError` whose message says what went wrong
*and what to do*. The CLI prints it as one line and exits non-zero; the TUI shows it as a
notification. Anything else reaching the top is a bug.
"""

from __future__ import annotations

import re
import traceback

STORE_HINT = "run `microvqa doctor` to check the store and see how to recover"


class MicroVQAError(Exception):
    """Base class: an error with a message meant for the user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(MicroVQAError):
    """The settings file or an environment override is invalid."""


class StoreError(MicroVQAError):
    """The LanceDB store cannot be opened, read or written."""


class IngestError(MicroVQAError):
    """A source as a whole cannot be ingested (missing folder, unreadable file, wrong layout)."""


class ValidationError(IngestError):
    """A source file's content contradicts itself (e.g. correct_index vs correct_answer)."""


class ModelMissingError(MicroVQAError):
    """A model a step needs is not on disk; the message says which and how to get it."""


class ModelError(MicroVQAError):
    """A model failed to load or to run."""


class GenerationError(ModelError):
    """A model's output could not be turned into the structured result asked for."""


class PipelineError(MicroVQAError):
    """A pipeline step cannot run (missing inputs, bad state)."""


class Cancelled(MicroVQAError):
    """The user cancelled a long-running step; the store is consistent."""

    exit_code = 130


class ExportError(MicroVQAError):
    """An export cannot be written (existing folder, unsafe path, nothing to export)."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, without the Rust source locations LanceDB adds."""
    text = " ".join(str(exc).split())
    text = re.sub(r",?\s*/\S+\.rs:\d+:\d+", "", text)
    return text[:limit] or type(exc).__name__


def raised_by_store_library(exc: BaseException) -> bool:
    """Whether `exc` came out of LanceDB (a damaged or unreadable store, not a bug of ours)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return any("/lancedb/" in f.filename or "/lance/" in f.filename for f in frames)
