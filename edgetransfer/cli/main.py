"""The `edgetransfer` command: a thin Click layer over each stage's `run()`.

One command per entry of the stage registry (edgetransfer.registry), its options made from
the stage's config (flags.py); heavy imports (torch, transformers) happen inside the
stages' functions, so `--help` is instant.
Errors a user can fix print one line and exit with a documented code (docs/errors.md); a
traceback appears only with --debug.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from .. import __version__, registry
from ..errors import EXIT_ENVIRONMENT, EXIT_INTERNAL, EXIT_INTERRUPTED, EdgeTransferError
from . import inputs
from .flags import build, options_from

log = logging.getLogger("edgetransfer")
_state = {"debug": False}


class _Format(logging.Formatter):
    def format(self, record):
        msg = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {msg}"
        return msg


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    # the libraries' own chatter only when asked for (-v)
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbose < 2:  # datasets' per-map bars: noise at our sizes
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if verbose == 0:
        # transformers resets its logger level on import; its own variable survives that
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        for name in ("transformers", "datasets", "accelerate", "peft", "torch"):
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            import warnings

            warnings.filterwarnings("ignore", category=UserWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
        except Exception:  # pragma: no cover
            pass


# The commands that are not stages, as the group's --help lists them after the stages
PIPELINES = {"run": "a whole recipe (recipes/*.yaml), resumable, with a report",
             "validate": "check a recipe without running it",
             "report": "re-render a pipeline's report"}


class _Group(click.Group):
    """The command list once, in two sections: the stages in the registry's (pipeline)
    order, then the pipeline commands (Click's own list is alphabetical and one)."""

    def format_commands(self, ctx, formatter) -> None:
        stages = [(s.name, s.summary) for s in registry.stages()]
        with formatter.section("Stages"):
            formatter.write_dl(stages)
        with formatter.section("Pipelines"):
            formatter.write_dl(list(PIPELINES.items()))

    def get_command(self, ctx, name):
        # a stage registered after this module's import (a plugin's, a test's) has its
        # command too: its registry entry is all it takes
        if name not in self.commands and name in {s.name for s in registry.stages()}:
            self.add_command(stage_command(registry.get(name)))
        return super().get_command(ctx, name)


@click.group(cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             help="Take a pretrained backbone to a verified, packaged edge model.\n\n"
                  "Run `edgetransfer COMMAND --help` for a command's options.")
@click.version_option(__version__, "--version", prog_name="edgetransfer")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-v", "--verbose", count=True, help="More output (-vv: debug, and the "
              "libraries' own logs).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(debug: bool, verbose: int, quiet: bool) -> None:
    _state["debug"] = debug
    _setup_logging(verbose, quiet)


def stage_command(stage: registry.Stage) -> click.Command:
    """A stage's command: one option per config field, its module's HELP, its entry."""
    module, config = stage.load(), stage.config_class()

    def callback(**values):
        extras = {name: values.pop(name) for name, _ in stage.flags}
        if stage.argument:
            extras[stage.argument] = list(values.pop(stage.argument))
        from .. import pipeline  # (no torch)

        extras |= pipeline.handed(stage)
        cfg = build(config, values)
        inputs.check(cfg)  # (a mistyped path: said before the stage loads torch)
        getattr(module, stage.entry)(cfg, **extras)

    fn = options_from(config, first=stage.first)(callback)
    for name, help_text in reversed(stage.flags):
        fn = click.option(f"--{name}", name, is_flag=True, help=help_text)(fn)
    if stage.argument:
        fn = click.argument(stage.argument, nargs=-1)(fn)
    return click.command(stage.name, help=module.HELP, short_help=stage.summary,
                         context_settings={"show_default": True})(fn)


for _stage in registry.stages():
    cli.add_command(stage_command(_stage))


@cli.command(name="run", short_help=PIPELINES["run"])
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--from", "from_step", metavar="STEP", help="Re-run from this step on "
              f"({', '.join(s.name for s in registry.steps())}), even if unchanged.")
@click.option("--force", is_flag=True, help="Re-run every step.")
@click.option("--reuse-from", type=click.Path(path_type=Path), metavar="DIR",
              help="Another run's output folder (a variant's, e.g. another student of the "
                   "same teacher): its finished steps that this run would make the same are "
                   "copied from there instead of run, and distill's teacher cache with them. "
                   "DIR is only read.")
def run_command(recipe_file, overrides, from_step, force, reuse_from) -> None:
    """Run a recipe: finetune -> distill -> export -> verify -> package, and a report.

    \b
    Examples:
      edgetransfer run recipes/quickstart.yaml
      edgetransfer run recipes/sst2.yaml data.dir=../shared/data/sst2 finetune.epochs=2
      edgetransfer run recipes/sst2.yaml data.dir=../shared/data/sst2 \\
          output=models/sst2-L2 distill.student_layers=2 --reuse-from models/sst2

    Artifacts go to models/NAME/ (one folder per step, each with artifact.json). A re-run
    reuses every step whose inputs and settings are unchanged; an interrupted run resumes
    where it stopped. A variant into another folder (the last example) copies the steps it
    shares with an earlier run (the teacher), keeping both runs' students.
    """
    from .. import pipeline

    root = pipeline.run(recipe_file, list(overrides), from_step=from_step, force=force,
                        reuse_from=reuse_from)
    click.echo(f"report: {root / 'report.md'}")


@cli.command(short_help=PIPELINES["validate"])
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
def validate(recipe_file, overrides) -> None:
    """Check a recipe (schema, overrides, data files) without loading torch or running."""

    from .. import pipeline
    from .. import recipe as recipes
    from ..errors import ConfigError

    recipe, _ = recipes.load(recipe_file, list(overrides))
    root = recipes.output_root(recipe, recipe_file)
    steps = pipeline.plan(recipe, recipe_file, root)
    missing = sorted({path for p in steps for role, path in p.inputs.items()
                      if role in pipeline.FILE_ROLES and not Path(path).exists()})
    click.echo(f"{recipe_file}: valid recipe {recipe.name!r}; artifacts in {root}")
    for i, p in enumerate(steps, 1):
        click.echo(f"  {i}. {p.step:<9} -> {Path(p.config.out).relative_to(root.parent)}")
    if missing:
        raise ConfigError(f"{recipe_file}: data file {missing[0]} does not exist"
                          + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
                          + "; fix data.dir or the file names (override with data.dir=PATH)")


@cli.command(short_help=PIPELINES["report"])
@click.argument("folder", type=click.Path(exists=True, file_okay=False,
                                          path_type=Path))
def report(folder) -> None:
    """Re-render report.md, report.json and report.png of a pipeline's folder."""
    from .. import report as reports

    reports.write(folder)
    click.echo(f"report: {folder / 'report.md'}")


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="edgetransfer", standalone_mode=False)
    except click.exceptions.Abort:  # Click turns Ctrl-C (KeyboardInterrupt) into Abort
        click.echo("interrupted; an interrupted run continues with --resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        from ..untrusted import one_line

        message = one_line(e.format_message())  # (it may echo a megabyte of an argument)
        e.format_message = lambda: message
        e.show()
        sys.exit(e.exit_code)
    except EdgeTransferError as e:
        if _state["debug"]:
            raise
        from ..untrusted import one_line

        # one line, at most MAX_MESSAGE characters: the last resort for a message that
        # echoes more of its input than it should
        click.echo(f"error: {one_line(e)}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        if _state["debug"]:
            raise
        click.echo("interrupted; an interrupted run continues with --resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # a bug: say so in one line unless asked for the traceback
        if _state["debug"]:
            raise
        from ..errors import storage_error

        problem = storage_error(e)  # a full disk or an unwritable folder mid-run: exit 4
        if problem is not None:
            from ..untrusted import one_line

            click.echo(f"error: {one_line(problem)}", err=True)
            sys.exit(problem.exit_code)
        if type(e).__name__ == "OutOfMemoryError":  # torch's, on CUDA: the machine, not a bug
            click.echo("error: the GPU ran out of memory; lower --batch-size or --max-length",
                       err=True)
            sys.exit(EXIT_ENVIRONMENT)
        from ..untrusted import clip

        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        click.echo(f"internal error: {type(e).__name__}: {clip(first, 300)} (rerun with --debug "
                   f"for the traceback, and please report it)", err=True)
        sys.exit(EXIT_INTERNAL)
    else:
        from ..train.training import leave_process_group

        leave_process_group()
