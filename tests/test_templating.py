"""Tests of command rendering: expressions, optional blocks, quoting, and shell-injection safety."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_ml.exceptions import ValidationError
from prefect_ml.specs import render_command

EVIL = [
    "; touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "' ; touch pwned ; '",
    '" ; touch pwned ; "',
    "a\ntouch pwned",
    "a\n'\ntouch pwned\n'",
    "$HOME ${HOME} *",
    "\\\"; touch pwned; echo \\",
    "x' \"$(touch pwned)\" 'y",
    "&& touch pwned || touch pwned &",
    "",
    "  leading and trailing  ",
    "EOF",
]


def _render(command: str, **inputs) -> str:
    return render_command(command, inputs=inputs, outputs={"out": "/tmp/out dir"}, name="job-1")


def _run(rendered: str, folder: Path) -> list[str]:
    """Run ``rendered`` with bash in ``folder``; return the lines the ``ARGS`` helper recorded."""
    script = folder / "args.py"
    script.write_text("import json, sys\nwith open('argv.jsonl', 'a') as f:\n"
                      "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    env_cmd = f"ARGS() {{ {sys.executable} {script} \"$@\"; }}\n{rendered}"
    result = subprocess.run(["bash", "-c", env_cmd], cwd=folder, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    record = folder / "argv.jsonl"
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def test_basic_rendering_and_quoting():
    command = "python t.py --s ${{inputs.s}} --n ${{ inputs.n }} --f ${{inputs.f}} --b ${{inputs.b}} " \
              "--o ${{outputs.out}} --name ${{name}}"
    rendered = _render(command, s="hello world", n=42, f=0.5, b=True)
    assert rendered == "python t.py --s 'hello world' --n 42 --f 0.5 --b True --o '/tmp/out dir' --name job-1"
    assert _render("x ${{inputs.b}}", b=False) == "x False"


def test_optional_blocks():
    command = "train.py $[[--epochs ${{inputs.epochs}}]] $[[ --lr   ${{inputs.lr}} ]]--end"
    assert _render(command, epochs=5, lr=None) == "train.py --epochs 5 --end"
    assert _render(command, epochs=None, lr=0.1) == "train.py   --lr   0.1 --end"
    assert _render(command, epochs=None, lr=None) == "train.py  --end"
    multi = "go $[[--a ${{inputs.a}} --b ${{inputs.b}}]] $[[--flag]] ${{name}}"
    assert _render(multi, a=1, b=None) == "go  --flag job-1"
    assert _render(multi, a=1, b="x y") == "go --a 1 --b 'x y' --flag job-1"


def test_optional_block_keeps_two_tokens(tmp_path):
    rendered = _render("ARGS $[[--epochs ${{inputs.epochs}}]] end", epochs=5)
    assert _run(rendered, tmp_path) == [["--epochs", "5", "end"]]


def test_unknown_references_raise():
    with pytest.raises(ValidationError) as exc:
        _render("echo ${{inputs.nope}} ${{outputs.none}} ${{search_space.B}}", x=1)
    assert [p.field for p in exc.value.problems] == ["command"] * 3
    assert "'nope'" in exc.value.problems[0].message and "x" in exc.value.problems[0].message


def test_missing_value_outside_a_block_raises():
    with pytest.raises(ValidationError) as exc:
        _render("echo ${{inputs.x}}", x=None)
    assert "$[[--x ${{inputs.x}}]]" in exc.value.problems[0].message


@pytest.mark.parametrize("value", EVIL)
def test_values_never_become_shell_code_unquoted(tmp_path, value):
    rendered = _render("ARGS ${{inputs.v}} --out ${{outputs.out}} && ARGS $[[--v ${{inputs.v}}]]", v=value)
    assert _run(rendered, tmp_path) == [[value, "--out", "/tmp/out dir"], ["--v", value]]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value", EVIL)
def test_values_never_become_shell_code_in_quotes(tmp_path, value):
    command = ("ARGS \"--iris-csv: ${{inputs.v}}\" 'single ${{inputs.v}} end' \"$(echo \"${{inputs.v}}\")\" "
               "x${{inputs.v}}y")
    rendered = _render(command, v=value)
    substituted = value.rstrip("\n")  # $( ) drops trailing newlines, as bash does
    assert _run(rendered, tmp_path) == [[f"--iris-csv: {value}", f"single {value} end", substituted,
                                         f"x{value}y"]]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value", EVIL)
def test_values_in_comments_and_backticks_are_inert(tmp_path, value):
    rendered = _render("ARGS first # note ${{inputs.v}}\nARGS `echo ok` ${{inputs.v}}", v=value)
    assert _run(rendered, tmp_path) == [["first"], ["ok", value]]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value", [v for v in EVIL if "\n" not in v and v != "EOF"])
def test_values_in_heredocs_are_literal(tmp_path, value):
    rendered = _render("cat > a.txt <<EOF\n${{inputs.v}}\nEOF\ncat > b.txt <<'END'\n${{inputs.v}}\nEND\n"
                       "ARGS done", v=value)
    assert _run(rendered, tmp_path) == [["done"]]
    assert (tmp_path / "a.txt").read_text() == value + "\n"
    assert (tmp_path / "b.txt").read_text() == value + "\n"
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value", ["a\ntouch pwned", "EOF"])
def test_heredoc_breaking_value_is_refused(value):
    with pytest.raises(ValidationError) as exc:
        _render("cat <<-EOF\n${{inputs.v}}\nEOF\n", v=value)
    assert exc.value.problems[0].field == "command"


def test_value_is_not_rescanned_for_expressions():
    assert _render("echo ${{inputs.a}}", a="${{inputs.b}}", b="secret") == "echo '${{inputs.b}}'"


def test_azure_multiline_command(tmp_path):
    command = 'echo "--iris-csv: ${{inputs.iris_csv}}"\nARGS --iris-csv ${{inputs.iris_csv}}\n'
    rendered = _render(command, iris_csv="https://x/iris.csv")
    assert rendered == "echo \"--iris-csv: https://x/iris.csv\"\nARGS --iris-csv https://x/iris.csv\n"
    assert _run(rendered, tmp_path) == [["--iris-csv", "https://x/iris.csv"]]
