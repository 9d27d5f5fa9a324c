"""Editable prompt templates (`assets/prompts/*.md`) and their versions.

A template file is split at lines `## <section>` (e.g. `## system`, `## user`,
`## task expert_visual_understanding`); text before the first heading and HTML comments
are notes for the person editing it. `{{name}}` placeholders are filled per call; an
unknown placeholder is an error, so a typo in an edited template fails loudly.

`prompt_version` = hash of the template text + the model id: it is stored on every QA, so a
changed prompt or model makes stage 1 generate again instead of silently mixing outputs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microvqa_tui.assets import PROMPTS_DIR
from microvqa_tui.errors import ConfigError

DEFAULT_PROMPT_DIR = PROMPTS_DIR  # the templates shipped with the package

_HEADING = re.compile(r"^##[ \t]+(\S.*?)\s*$", re.MULTILINE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class PromptTemplate:
    """One template file: its raw text (hashed into the version) and its sections."""

    path: Path
    text: str
    sections: dict[str, str]

    def section(self, name: str) -> str:
        try:
            return self.sections[name]
        except KeyError:
            have = ", ".join(self.sections) or "none"
            raise ConfigError(
                f"prompt template {self.path} has no '## {name}' section (it has: {have})",
                hint="restore the section or reset the file from the repository",
            ) from None

    def render(self, name: str, values: dict[str, Any]) -> str:
        return fill(self.section(name), values, where=f"{self.path} '## {name}'")

    def messages(self, values: dict[str, Any]) -> list[dict[str, str]]:
        """Chat messages: the system section (when present) and the user section."""
        out = []
        if "system" in self.sections:
            out.append({"role": "system", "content": self.render("system", values)})
        out.append({"role": "user", "content": self.render("user", values)})
        return out

    def version(self, model_id: str) -> str:
        """Hash of the template text and the model id (12 hex characters)."""
        digest = hashlib.sha256()
        digest.update(self.text.encode("utf-8"))
        digest.update(b"\0")
        digest.update(model_id.encode("utf-8"))
        return digest.hexdigest()[:12]


def fill(text: str, values: dict[str, Any], *, where: str = "template") -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join(sorted(values))
            raise ConfigError(
                f"unknown placeholder {{{{{name}}}}} in {where}",
                hint=f"placeholders available here: {known}",
            )
        return str(values[name])

    return _PLACEHOLDER.sub(replace, text).strip()


def parse_template(text: str, path: Path) -> PromptTemplate:
    body = _COMMENT.sub("", text)
    matches = list(_HEADING.finditer(body))
    sections: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        name = " ".join(match.group(1).split())
        sections[name] = body[match.end() : end].strip()
    if "user" not in sections:
        raise ConfigError(
            f"prompt template {path} has no '## user' section",
            hint="each template needs at least a '## user' section",
        )
    return PromptTemplate(path=path, text=text, sections=sections)


def load_template(name: str, prompt_dir: Path | None = None) -> PromptTemplate:
    """Read `<prompt_dir>/<name>` (default: the prompts shipped with the package)."""
    path = Path(name)
    if not path.is_absolute():
        path = Path(prompt_dir or DEFAULT_PROMPT_DIR) / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read prompt template {path}: {exc.strerror or exc}",
            hint="set stage1.prompt_dir to a folder holding the templates of assets/prompts",
        ) from None
    return parse_template(text, path)


@dataclass(frozen=True)
class TaskPrompt:
    title: str
    instructions: str
    example: str


def task_parts(template: PromptTemplate, task_type: str) -> TaskPrompt:
    """The `## task <type>` section: a `Title:` line, instructions, an `Example:` line.

    Title and example are optional (the title defaults to the task type in words).
    """
    body = template.section(f"task {task_type}")
    title, example, rest = task_type.replace("_", " ").capitalize(), "", []
    for line in body.splitlines():
        head, _, tail = line.partition(":")
        key = head.strip().lower()
        if key == "title" and tail.strip():
            title = tail.strip()
        elif key == "example" and tail.strip():
            example = tail.strip()
        else:
            rest.append(line)
    return TaskPrompt(title, "\n".join(rest).strip(), example)
