"""Every reason code a step writes (quarantine rows, held-out items) is a word of
`vocabulary.py`: the package is scanned for the places a reason is made, and each reason
given there must resolve to a vocabulary code, and be spelled by its vocabulary name: a
literal string fails even when it equals a code (a drift such as `unparsable` for
`unparsable_output` would otherwise pass unnoticed in one place and fail in another)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

from microvqa_tui import vocabulary

PACKAGE = Path(vocabulary.__file__).parent
CODES = {code for codes in vocabulary.QUARANTINE_REASONS.values() for code in codes} | set(
    vocabulary.HELD_OUT_REASONS
)
# class -> the position of its reason argument (it may also be passed as `reason=`)
CARRIERS = {
    "Quarantined": None,  # common/quarantine.py: the quarantine writer, keywords only
    "Reject": 2,  # ingest: an input bound for quarantine
    "Problem": 0,  # ingest checks
    "Check": 1,  # stage 1 checks
    "Failure": 0,  # stage 3 checks
    "AttemptFailure": 1,  # stage 3 attempts
    "CheckFailure": 0,  # selection reasoning checks
}


def _reason_args(tree: ast.AST):
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in CARRIERS:
            continue
        index = CARRIERS[name]
        args = [kw.value for kw in node.keywords if kw.arg == "reason"]
        if index is not None and len(node.args) > index:
            args.append(node.args[index])
        yield from args


def _branches(expr: ast.expr):
    if isinstance(expr, ast.IfExp):
        yield from _branches(expr.body)
        yield from _branches(expr.orelse)
    else:
        yield expr


def _resolve(expr: ast.expr, module: ModuleType) -> object:
    """The value a module-level name (or `module.NAME`) stands for; None for anything else
    (a variable passing on a reason made elsewhere, checked where it is made)."""
    if isinstance(expr, ast.Name):
        return getattr(module, expr.id, None)
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        owner = getattr(module, expr.value.id, None)
        return getattr(owner, expr.attr, None) if isinstance(owner, ModuleType) else None
    return None


def test_every_reason_a_step_writes_is_a_vocabulary_code():
    problems, seen = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        module = None
        for arg in _reason_args(tree):
            for expr in _branches(arg):
                where = f"{rel}:{expr.lineno}"
                if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                    seen += 1
                    problems.append(f"{where}: {expr.value!r} spelled out; import its name")
                elif isinstance(expr, ast.JoinedStr):
                    problems.append(f"{where}: a reason made with an f-string")
                else:
                    module = module or importlib.import_module(_module_name(rel))
                    value = _resolve(expr, module)
                    if value is not None:
                        seen += 1
                        if value not in CODES:
                            problems.append(f"{where}: {value!r} is not a vocabulary code")
    assert not problems, "\n".join(problems)
    assert seen > 40  # the scan finds the checks of ingest, stage 1, stage 3 and selection


def _module_name(rel: str) -> str:
    return "microvqa_tui." + rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def test_each_stage_has_its_own_codes_once():
    for stage, codes in vocabulary.QUARANTINE_REASONS.items():
        assert len(set(codes)) == len(codes), stage
    assert vocabulary.UNPARSABLE in vocabulary.MCQ_REASONS  # one word for both LLM stages
