"""Runs a :func:`prefect_ml.command_component` function inside its step: ``python -m prefect_ml.pipelines.runner
MODULE:FUNCTION --name value ...``.

Arguments are converted with the function's annotations (``int``, ``float``, ``bool``, ``str``; ``Input`` and
``Output`` parameters get their local paths as strings). The current folder (the step's code snapshot) is
put first on ``sys.path`` so that MODULE imports from it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys


def _convert(annotation, text: str):
    if isinstance(annotation, str):
        annotation = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation, str)
    if annotation is bool:
        return text.strip().lower() in ("true", "1", "yes")
    if annotation in (int, float):
        return annotation(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Import MODULE:FUNCTION, parse ``--param value`` pairs and call it; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or ":" not in argv[0]:
        print("usage: python -m prefect_ml.pipelines.runner MODULE:FUNCTION [--param value ...]", file=sys.stderr)
        return 2
    module_name, _, qualname = argv[0].partition(":")
    sys.path.insert(0, ".")
    target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    fn = getattr(target, "_python_function", None) or target  # a @command_component keeps its function
    signature = inspect.signature(fn)
    parser = argparse.ArgumentParser(prog=argv[0])
    for param in signature.parameters.values():
        parser.add_argument(f"--{param.name}", dest=param.name, default=None)
    parsed = vars(parser.parse_args(argv[1:]))
    kwargs = {}
    for param in signature.parameters.values():
        value = parsed[param.name]
        if value is None:
            continue
        kwargs[param.name] = _convert(param.annotation, value)
    result = fn(**kwargs)
    if result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
