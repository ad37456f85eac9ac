"""The `edgetransfer` command: a thin Click layer over each stage's `run()`.

Heavy imports (torch, transformers) happen inside the commands, so `--help` is instant.
Errors a user can fix print one line and exit with a documented code (README, "Exit
codes"); a traceback appears only with --debug.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from . import __version__
from .cli_options import build, options_from
from .errors import EXIT_ENVIRONMENT, EXIT_INTERNAL, EXIT_INTERRUPTED, EdgeTransferError

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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="edgetransfer")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-v", "--verbose", count=True, help="More output (-vv: debug, and the "
              "libraries' own logs).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(debug: bool, verbose: int, quiet: bool) -> None:
    """Take a pretrained transformer to a verified, packaged edge model.

    \b
    Stages:
      finetune   adapt a backbone to a labelled task (full, LoRA or head-only)
      distill    teach a small, fast student from the fine-tuned teacher
      export     ONNX through optimum, fusions, int8/fp16 quantization, parity-gated
      verify     accuracy, output parity and latency against a reference and a baseline
      package    a bundle for the device: model, tokenizer, runtime (onnxruntime only)
      predict    classify texts with a bundle, as the device does

    \b
    Pipelines:
      run        a whole recipe (recipes/*.yaml), resumable, with a report
      validate   check a recipe without running it
      report     re-render a pipeline's report

    Run `edgetransfer COMMAND --help` for a command's options.
    """
    _state["debug"] = debug
    _setup_logging(verbose, quiet)


def _finetune_config():
    from .stages.finetune import FinetuneConfig

    return FinetuneConfig


@cli.command(context_settings={"show_default": True})
@options_from(_finetune_config(), first=("model", "train", "validation", "test", "method", "out"))
def finetune(**values) -> None:
    """Fine-tune a backbone on labelled texts (or text pairs).

    \b
    Example (offline, bundled backbone and the quickstart data):
      edgetransfer finetune --model minilm-l6 \\
          --train recipes/data/intents/train.jsonl \\
          --validation recipes/data/intents/validation.jsonl \\
          --test recipes/data/intents/test.jsonl --method lora --out models/demo/teacher

    Several processes or GPUs: `torchrun --nproc_per_node N -m edgetransfer finetune ...`
    or `accelerate launch -m edgetransfer finetune ...`.
    """
    from .stages import finetune as stage

    stage.run(build(stage.FinetuneConfig, values))


def _distill_config():
    from .stages.distill import DistillConfig

    return DistillConfig


@cli.command(context_settings={"show_default": True})
@options_from(_distill_config(), first=("teacher", "student_layers", "keep_layers", "student",
                                        "train", "validation", "test", "unlabeled", "out"))
def distill(**values) -> None:
    """Distill a fine-tuned teacher into a smaller, faster student.

    \b
    Example: a 3-layer student cut from a 6-layer teacher (layers 0, 2, 5 kept):
      edgetransfer distill --teacher models/demo/teacher --student-layers 3 \\
          --train recipes/data/intents/train.jsonl \\
          --validation recipes/data/intents/validation.jsonl --out models/demo/student

    The loss mixes soft targets (KL at --temperature, weight --alpha) with cross-entropy on
    the gold labels; --hidden-weight and --attention-weight add hidden-state and attention
    transfer over the layer mapping.
    """
    from .stages import distill as stage

    stage.run(build(stage.DistillConfig, values))


def _export_config():
    from .stages.export import ExportConfig

    return ExportConfig


@cli.command(name="export", context_settings={"show_default": True})
@options_from(_export_config(), first=("model", "out", "quantize", "target"))
def export_command(**values) -> None:
    """Export a checkpoint to ONNX: fusions, int8/fp16 quantization, parity-gated.

    \b
    Examples:
      edgetransfer export --model models/demo/student --quantize int8-dynamic \\
          --out models/demo/onnx
      edgetransfer export --model models/demo/student --quantize int8-static \\
          --calibration-data recipes/data/intents/train.jsonl --out models/demo/onnx-static
      edgetransfer export --model models/demo/student --quantize auto \\
          --max-accuracy-drop 0.5 --eval-data recipes/data/intents/validation.jsonl \\
          --out models/demo/onnx-auto

    Output parity with PyTorch is a gate: a model that drifts beyond tolerance is an error
    (exit 3) and nothing is written under --out.
    """
    from .stages import export as stage

    stage.run(build(stage.ExportConfig, values))


def _verify_config():
    from .stages.verify import VerifyConfig

    return VerifyConfig


@cli.command(context_settings={"show_default": True})
@options_from(_verify_config(), first=("reference", "candidate", "data", "baseline",
                                       "max_latency_regression", "update_baseline", "out"))
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON report on stdout.")
def verify(as_json: bool, **values) -> None:
    """Check candidates against a reference: accuracy, output parity, latency.

    \b
    Examples:
      edgetransfer verify --reference models/demo/teacher \\
          --candidate models/demo/student --candidate models/demo/onnx \\
          --data recipes/data/intents/test.jsonl --max-accuracy-drop 3
      edgetransfer verify ... --update-baseline latency-baseline.json
      edgetransfer verify ... --baseline latency-baseline.json --max-latency-regression 10%

    \b
    Exit codes: 0 all gates passed; 3 output parity failed; 5 a candidate lost more
    accuracy than allowed; 6 latency regressed against the baseline (the first of these
    that applies; verify.json lists every failure).
    """
    import json

    from .stages import verify as stage

    cfg = build(stage.VerifyConfig, values)
    report = stage.run(cfg)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo(stage.render(report))
    stage.check(report, cfg.out)


def _package_config():
    from .stages.package import PackageConfig

    return PackageConfig


@cli.command(context_settings={"show_default": True})
@options_from(_package_config(), first=("model", "verify_report", "target", "out"))
def package(**values) -> None:
    """Bundle an exported model for a device: one folder and one deterministic .tar.gz.

    \b
    Example:
      edgetransfer package --model models/demo/onnx --verify-report models/demo/verify.json \\
          --target linux-aarch64 --out models/demo/bundle
    writes models/demo/bundle/, models/demo/bundle.tar.gz and models/demo/bundle.json.
    On the device, after unpacking:
      pip install -r requirements.txt && python predict.py "turn the kitchen lights off"

    A model whose verify gates failed is refused (exit 3) unless --force; the manifest then
    says so. The bundled runtime is measured here in fresh processes (cold start, peak RSS,
    per-request latency) and the figures go into manifest.json.
    """
    from .stages import package as stage

    stage.run(build(stage.PackageConfig, values))


def _predict_config():
    from .stages.predict import PredictConfig

    return PredictConfig


@cli.command(context_settings={"show_default": True})
@click.argument("texts", nargs=-1)
@options_from(_predict_config(), first=("bundle", "input"))
def predict(texts: tuple[str, ...], **values) -> None:
    """Classify TEXTS (and/or --input FILE) with a bundle; one JSON line per text.

    \b
    Examples:
      edgetransfer predict --bundle models/demo/bundle.tar.gz "turn the kitchen lights off"
      edgetransfer predict --bundle models/demo/bundle --input texts.jsonl --top-k 3

    It runs the bundle's own predict.py (onnxruntime, no torch); an archive is unpacked to a
    temporary folder and refused if it holds links, absolute names, `..` or a file that fails
    its sha256.
    """
    from .stages import predict as stage

    stage.run(build(stage.PredictConfig, values), list(texts))


@cli.command(name="run")
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=__import__("pathlib").Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--from", "from_step", metavar="STEP", help="Re-run from this step on "
              "(finetune, distill, export, verify, package), even if unchanged.")
@click.option("--force", is_flag=True, help="Re-run every step.")
def run_command(recipe_file, overrides, from_step, force) -> None:
    """Run a recipe: finetune -> distill -> export -> verify -> package, and a report.

    \b
    Examples:
      edgetransfer run recipes/quickstart.yaml
      edgetransfer run recipes/sst2.yaml data.dir=../shared/data/sst2 finetune.epochs=2

    Artifacts go to models/NAME/ (one folder per step, each with artifact.json). A re-run
    reuses every step whose inputs and settings are unchanged; an interrupted run resumes
    where it stopped.
    """
    from . import pipeline

    root = pipeline.run(recipe_file, list(overrides), from_step=from_step, force=force)
    click.echo(f"report: {root / 'report.md'}")


@cli.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=__import__("pathlib").Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
def validate(recipe_file, overrides) -> None:
    """Check a recipe (schema, overrides, data files) without loading torch or running."""
    from pathlib import Path

    from . import pipeline
    from . import recipe as recipes
    from .errors import ConfigError

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


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False,
                                          path_type=__import__("pathlib").Path))
def report(folder) -> None:
    """Re-render report.md, report.json and report.png of a pipeline's folder."""
    from . import report as reports

    reports.write(folder)
    click.echo(f"report: {folder / 'report.md'}")


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="edgetransfer", standalone_mode=False)
    except click.exceptions.Abort:  # Click turns Ctrl-C (KeyboardInterrupt) into Abort
        click.echo("interrupted; an interrupted run continues with --resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except EdgeTransferError as e:
        if _state["debug"]:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        if _state["debug"]:
            raise
        click.echo("interrupted; an interrupted run continues with --resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # a bug: say so in one line unless asked for the traceback
        if _state["debug"]:
            raise
        from .errors import storage_error

        problem = storage_error(e)  # a full disk or an unwritable folder mid-run: exit 4
        if problem is not None:
            click.echo(f"error: {problem}", err=True)
            sys.exit(problem.exit_code)
        if type(e).__name__ == "OutOfMemoryError":  # torch's, on CUDA: the machine, not a bug
            click.echo("error: the GPU ran out of memory; lower --batch-size or --max-length",
                       err=True)
            sys.exit(EXIT_ENVIRONMENT)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        click.echo(f"internal error: {type(e).__name__}: {first[:300]} (rerun with --debug for "
                   f"the traceback, and please report it)", err=True)
        sys.exit(EXIT_INTERNAL)
