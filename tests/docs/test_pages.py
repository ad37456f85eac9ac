"""The README and every page under docs/: each page linked from the README, every link
resolved, every command line shown in a code block parsed by the command it names (its
subcommand and flags exist, a choice or number is one the option takes), every Python block
compiled, and the facts kept in one place (the exit codes, the bad-input table)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import click
import pytest
from codeblocks import HEADING, Block, blocks, commands, section

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCUMENTS = [ROOT / "README.md", *PAGES]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# where a page's shell block runs a script by a name that is not its path in this repository
SCRIPTS = {"predict.py": "edgetransfer/bundle/runtime/predict.py"}


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_every_page_is_linked_from_the_readme_map():
    documentation = section((ROOT / "README.md").read_text(encoding="utf-8"), "Documentation")
    linked = {m.group(1).split("#")[0] for m in LINK.finditer(documentation)}
    assert linked == {f"docs/{p.name}" for p in PAGES}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slug(m.group(2)) for m in HEADING.finditer(text)}


@pytest.mark.parametrize("document", DOCUMENTS, ids=_id)
def test_every_link_resolves(document):
    text = re.sub(r"^```.*?^```", "", document.read_text(encoding="utf-8"), flags=re.M | re.S)
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        name, _, anchor = target.partition("#")
        path = (document.parent / name).resolve() if name else document
        assert path.exists(), f"{_id(document)}: {target}: no such file"
        if anchor:
            assert anchor in anchors(path), f"{_id(document)}: {target}: no such heading"


# --- command lines

def _is_placeholder(value: str) -> bool:
    """A value a page leaves for the reader to fill in: DIR, N, FILE, KEY=VALUE, ..."""
    return "..." in value or "$" in value or bool(re.fullmatch(r"[A-Z][A-Z0-9_=\-]*", value))


def check_edgetransfer(words: list[str]) -> None:
    """`edgetransfer WORDS...` parses: the global options, the command, each option of it
    (and its value where the option takes one), and nothing left over."""
    from edgetransfer.cli import cli

    words = [w for w in words if w != "..."]
    _, rest, _ = cli.make_parser(click.Context(cli)).parse_args(list(words))
    assert rest, f"edgetransfer {' '.join(words)}: names no command"
    name, args = rest[0], rest[1:]
    command = cli.commands.get(name)
    assert command is not None, f"edgetransfer {name}: no such command"
    context = click.Context(command, info_name=name)
    opts, left, order = command.make_parser(context).parse_args(list(args))
    assert not left, f"edgetransfer {name}: unexpected arguments {left}"
    for param in order:
        value = opts.get(param.name)
        if isinstance(param, click.Option) and not param.is_flag and not any(
                _is_placeholder(str(v)) for v in (value if isinstance(value, list) else [value])):
            param.type_cast_value(context, value)  # a choice, an int, ... it takes


@cache
def script_help(script: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"{script} --help: {proc.stderr[-500:]}"
    return proc.stdout


def check_python(words: list[str]) -> None:
    """`python SCRIPT [--flag ...]`: the script is in this repository and takes each flag;
    `python -m edgetransfer ...` is the command."""
    if words[1:3] == ["-m", "edgetransfer"]:
        return check_edgetransfer(words[3:])
    if words[1] == "-m":  # (python -m pytest, venv, pip: not ours)
        return
    script = SCRIPTS.get(words[1], words[1])
    assert (ROOT / script).is_file(), f"{' '.join(words)}: no such script {script}"
    help_text = script_help(script)
    for word in words[2:]:
        flag = word.split("=")[0]
        if flag.startswith("--"):
            assert re.search(rf"{re.escape(flag)}\b", help_text), f"{script}: no {flag}"


TABLE_COMMAND = re.compile(r"^\| `((?:python|edgetransfer) [^`]+)` \|", re.M)


def shell_commands(document: Path):
    """Each command of its shell blocks, and of a table whose rows start with one (the
    benchmarks' scripts)."""
    text = document.read_text(encoding="utf-8")
    for block in blocks(text, "bash"):
        for words in commands(block.code):
            yield block, words
    for m in TABLE_COMMAND.finditer(text):
        row = Block("table", m.group(1), "a table", text.count("\n", 0, m.start()) + 1)
        for words in commands(row.code):
            yield row, words


@pytest.mark.parametrize("document", DOCUMENTS, ids=_id)
def test_every_command_line_parses(document):
    for block, words in shell_commands(document):
        where = f"{_id(document)}:{block.line} ({block.heading})"
        if "-m" in words and "edgetransfer" in words:  # torchrun/accelerate ... -m edgetransfer
            words = words[words.index("edgetransfer"):]
        try:
            if words[0] == "edgetransfer":
                check_edgetransfer(words[1:])
            elif words[0] == "python":
                check_python(words)
            else:
                continue  # pip, tar, cd: not this project's commands
        except (click.UsageError, click.BadParameter, AssertionError) as e:
            pytest.fail(f"{where}: {' '.join(words)}: {e}")



@pytest.mark.parametrize("document", DOCUMENTS, ids=_id)
def test_every_code_block_is_of_a_kind_that_is_checked(document):
    """Commands are read from bash blocks and code from python ones: a block marked
    otherwise would go unchecked (a plain block is a listing, a yaml or json one data)."""
    kinds = {b.lang for b in blocks(document.read_text(encoding="utf-8"))}
    assert kinds <= {"bash", "python", "yaml", "json", ""}, kinds


def test_the_checker_refuses_what_does_not_parse():
    for words in (["exprot"], ["export", "--nope"], ["export", "--model"],
                  ["export", "--quantize", "int9"], ["verify", "--threads", "two"],
                  ["finetune", "stray"]):
        with pytest.raises((click.UsageError, click.BadParameter, AssertionError)):
            check_edgetransfer(words)
    check_edgetransfer(["-q", "export", "--model", "DIR", "--no-fuse", "--quantize", "int8"])


def test_the_readme_test_command_is_the_one_ci_runs():
    test = blocks(section((ROOT / "README.md").read_text(encoding="utf-8"), "Test"), "bash")
    assert commands(test[0].code) == [["python", "-m", "pytest", "-q"]]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "python -m pytest -q" in ci


# --- Python blocks

@pytest.mark.parametrize("document", DOCUMENTS, ids=_id)
def test_every_python_block_compiles(document):
    for block in blocks(document.read_text(encoding="utf-8"), "python"):
        compile(block.code, f"{_id(document)}:{block.line}", "exec")


def test_the_api_page_calls_only_what_the_api_has():
    from edgetransfer import api

    calls = 0
    for block in blocks((ROOT / "docs" / "api.md").read_text(encoding="utf-8"), "python"):
        for node in ast.walk(ast.parse(block.code)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "api":
                function = getattr(api, node.func.attr)  # (AttributeError: no such stage)
                parameters = __import__("inspect").signature(function).parameters
            elif isinstance(owner, ast.Attribute) and owner.attr == "config":
                parameters = getattr(api, owner.value.attr).config.model_fields
            else:
                continue
            for keyword in node.keywords:
                assert keyword.arg in parameters, f"api.{node.func.attr}: no {keyword.arg}"
            calls += 1
    assert calls >= 5


# --- one place for each fact

def test_the_exit_code_and_bad_input_tables_are_each_in_one_place():
    from edgetransfer import errors

    texts = {_id(d): d.read_text(encoding="utf-8") for d in DOCUMENTS}
    for header in ("| exit code | meaning |", "| # | case |"):
        holders = [name for name, text in texts.items() if header in text]
        assert holders == ["docs/errors.md"], (header, holders)
    table = section(texts["docs/errors.md"], "Exit codes")
    documented = {int(m.group(1)) for m in re.finditer(r"^\| (\d+) \|", table, re.M)}
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    assert documented == codes | {0}


def test_code_names_only_sections_that_exist():
    """A message, help text, recipe or example that sends the reader to a README section
    names one that exists (the reference moved to docs/: "README \"Tasks\"" went stale)."""
    headings = {m.group(2).strip() for d in DOCUMENTS
                for m in HEADING.finditer(d.read_text(encoding="utf-8"))}
    for path in [*ROOT.glob("edgetransfer/**/*.py"), *ROOT.glob("recipes/*.yaml"),
                 *ROOT.glob("examples/**/*.yml")]:
        for m in re.finditer(r'README\\?"([^"\\]+)\\?"', path.read_text(encoding="utf-8")):
            assert m.group(1) in headings, f"{path}: README \"{m.group(1)}\""
