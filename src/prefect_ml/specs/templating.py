"""Rendering of a command job's ``command``: ``${{inputs.X}}``, ``${{outputs.Y}}``, ``${{name}}``, ``$[[ ... ]]``.

Implements the command expressions of
https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
("Expressions": ``${{inputs.<name>}}``, ``${{outputs.<name>}}``, optional blocks ``$[[ ... ]]``).

Values never become shell code: each is quoted for the shell context it lands in (unquoted word,
inside ``'...'``, inside ``"..."``, a comment, a here-document), so it arrives as literal text.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Callable, Mapping

from prefect_ml.exceptions import Problem, ValidationError

_REF = re.compile(r"\$\{\{\s*(?P<expr>.*?)\s*\}\}", re.DOTALL)
_BLOCK = re.compile(r"\$\[\[(?P<body>.*?)\]\]", re.DOTALL)
_EXPR = re.compile(r"^(?:(?P<kind>inputs|outputs)\.(?P<name>\w+)|(?P<jobname>name))$")


@dataclass(frozen=True)
class Reference:
    """One ``${{...}}`` expression of a command.

    Attributes:
        kind: ``inputs``, ``outputs``, ``name``, or ``invalid`` for anything else.
        name: Input or output name (``""`` for ``name`` and invalid expressions).
        text: The expression as written, ``${{ ... }}`` included.
        in_block: Whether it sits inside an optional block ``$[[ ... ]]``.
    """

    kind: str
    name: str
    text: str
    in_block: bool


def _parse(match: re.Match) -> tuple[str, str]:
    parsed = _EXPR.match(match.group("expr"))
    if parsed is None:
        return "invalid", ""
    if parsed.group("jobname"):
        return "name", ""
    return parsed.group("kind"), parsed.group("name")


def find_references(command: str) -> list[Reference]:
    """List the ``${{...}}`` expressions of ``command`` in order of appearance."""
    blocks = [(m.start(), m.end()) for m in _BLOCK.finditer(command)]
    refs = []
    for match in _REF.finditer(command):
        kind, name = _parse(match)
        inside = any(start <= match.start() < end for start, end in blocks)
        refs.append(Reference(kind, name, match.group(0), inside))
    return refs


def reference_problems(command: str, *, inputs: Mapping[str, Any], outputs: Mapping[str, Any] | Any,
                       field: str = "command", file: str | None = None) -> list[Problem]:
    """Problems with the expressions of ``command`` given the declared input and output names."""
    problems = []
    declared_in = ", ".join(inputs) or "none"
    declared_out = ", ".join(outputs) or "none"
    for ref in find_references(command):
        if ref.kind == "invalid":
            problems.append(Problem(field, "unsupported expression; a command job can use ${{inputs.NAME}}, "
                                    f"${{{{outputs.NAME}}}} and ${{{{name}}}} (inputs: {declared_in}; outputs: "
                                    f"{declared_out})", ref.text, file))
        elif ref.kind == "inputs" and ref.name not in inputs:
            problems.append(Problem(field, f"refers to undeclared input '{ref.name}' (declared inputs: "
                                    f"{declared_in})", ref.text, file))
        elif ref.kind == "outputs" and ref.name not in outputs:
            problems.append(Problem(field, f"refers to undeclared output '{ref.name}' (declared outputs: "
                                    f"{declared_out})", ref.text, file))
    return problems


def _text(value: Any) -> str:
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def _quote(value: str, frame: list) -> str:
    kind = frame[0]
    if kind == "s":
        return value.replace("'", "'\\''")
    if kind == "d":
        return re.sub(r'([\\"$`])', r"\\\1", value)
    if kind == "c":
        return shlex.quote(value.replace("\r", " ").replace("\n", " "))
    if kind == "h":
        if "\n" in value or "\r" in value:
            raise ValidationError([Problem("command", "a value with a line break cannot be placed in a "
                                           "here-document safely", value)], title="Cannot render command")
        if frame[1] in value:
            raise ValidationError([Problem("command", f"a value containing the here-document delimiter "
                                           f"{frame[1]!r} cannot be placed in it safely", value)],
                                  title="Cannot render command")
        return value if frame[2] else re.sub(r"([\\$`])", r"\\\1", value)
    return shlex.quote(value)


def _read_heredoc_word(template: str, j: int) -> tuple[int, str, bool]:
    """Read the delimiter of ``<<WORD`` starting at ``j``; return (end, delimiter, quoted)."""
    n = len(template)
    while j < n and template[j] in " \t":
        j += 1
    word, quoted, quote = [], False, None
    while j < n:
        ch = template[j]
        if quote:
            if ch == quote:
                quote = None
            else:
                word.append(ch)
        elif ch in "'\"":
            quote, quoted = ch, True
        elif ch == "\\" and j + 1 < n:
            quoted = True
            j += 1
            word.append(template[j])
        elif ch in " \t\n;&|<>()":
            break
        else:
            word.append(ch)
        j += 1
    return j, "".join(word), quoted


def _substitute(template: str, value_of: Callable[[re.Match], str]) -> str:
    """Replace each ``${{...}}`` of ``template`` by its value, quoted for its shell context."""
    out: list[str] = []
    stack: list[list] = [["u", 0]]
    pending: list[tuple[str, bool, bool]] = []
    i, n = 0, len(template)
    while i < n:
        frame = stack[-1]
        kind = frame[0]
        if kind == "h" and (i == 0 or template[i - 1] == "\n"):
            end = template.find("\n", i)
            end = n if end < 0 else end
            line = template[i:end]
            if (line.lstrip("\t") if frame[3] else line) == frame[1]:
                out.append(line)
                stack.pop()
                i = end
                continue
        if template.startswith("${{", i):
            match = _REF.match(template, i)
            if match:
                out.append(_quote(value_of(match), frame))
                i = match.end()
                continue
        ch = template[i]
        if kind == "s":
            if ch == "'":
                stack.pop()
        elif kind == "c":
            if ch == "\n":
                stack.pop()
                continue
        elif kind == "h":
            pass
        elif kind == "d":
            if ch == "\\":
                out.append(template[i:i + 2])
                i += 2
                continue
            if ch == '"':
                stack.pop()
            elif template.startswith("$(", i):
                stack.append(["p", 0])
                out.append("$(")
                i += 2
                continue
            elif ch == "`":
                stack.append(["b", 0])
        else:  # unquoted: top level "u", command substitution "p" ($(...)) or "b" (`...`)
            if ch == "\\":
                out.append(template[i:i + 2])
                i += 2
                continue
            if ch == "'":
                stack.append(["s", 0])
            elif ch == '"':
                stack.append(["d", 0])
            elif ch == "`":
                if kind == "b":
                    stack.pop()
                else:
                    stack.append(["b", 0])
            elif template.startswith("$(", i):
                stack.append(["p", 0])
                out.append("$(")
                i += 2
                continue
            elif ch == "(" and kind == "p":
                frame[1] += 1
            elif ch == ")" and kind == "p":
                if frame[1] == 0:
                    stack.pop()
                else:
                    frame[1] -= 1
            elif ch == "#" and (i == 0 or template[i - 1] in " \t\n;&|()"):
                stack.append(["c", 0])
            elif template.startswith("<<", i) and not template.startswith("<<<", i):
                j = i + 2
                strip = j < n and template[j] == "-"
                end, word, quoted = _read_heredoc_word(template, j + 1 if strip else j)
                if word:
                    pending.append((word, quoted, strip))
                out.append(template[i:end])
                i = end
                continue
            elif ch == "\n" and pending:
                word, quoted, strip = pending.pop(0)
                out.append(ch)
                stack.append(["h", word, quoted, strip])
                i += 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def render_command(command: str, *, inputs: Mapping[str, Any | None], outputs: Mapping[str, str],
                   name: str) -> str:
    """Render a command template into a shell command line.

    ``${{inputs.NAME}}`` becomes the input's value, ``${{outputs.NAME}}`` the output's path and
    ``${{name}}`` the job name, each quoted so that it is one literal shell word (``shlex.quote`` in
    unquoted context; booleans render as ``True``/``False``, numbers via ``str``). An optional block
    ``$[[ ... ]]`` is dropped entirely when an input it references has value None, else kept with its
    inner whitespace unchanged. See "Expressions" at
    https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.

    Args:
        command: The command template.
        inputs: Value of each input (None: not given).
        outputs: Path of each output.
        name: The job (run) name.

    Returns:
        The command line, ready for ``bash -c``.

    Raises:
        ValidationError: The command refers to an unknown input, output or expression, or a required
            input (outside an optional block) has no value.
    """
    problems = reference_problems(command, inputs=inputs, outputs=outputs)
    for ref in find_references(command):
        if ref.kind == "inputs" and not ref.in_block and ref.name in inputs and inputs[ref.name] is None:
            problems.append(Problem("command", f"input '{ref.name}' has no value; give it a value or use it "
                                    f"inside an optional block: $[[--{ref.name} ${{{{inputs.{ref.name}}}}}]]",
                                    ref.text))
    if problems:
        raise ValidationError(problems, title="Cannot render command")

    def block(match: re.Match) -> str:
        body = match.group("body")
        for ref in _REF.finditer(body):
            kind, ref_name = _parse(ref)
            if kind == "inputs" and inputs[ref_name] is None:
                return ""
        return body

    def value_of(match: re.Match) -> str:
        kind, ref_name = _parse(match)
        if kind == "inputs":
            return _text(inputs[ref_name])
        if kind == "outputs":
            return _text(outputs[ref_name])
        return _text(name)

    return _substitute(_BLOCK.sub(block, command), value_of)
