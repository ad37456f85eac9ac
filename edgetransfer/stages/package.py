"""Stage `package`: an export folder -> a self-contained bundle for a device.

The bundle: model.onnx (and model.ort when asked), tokenizer.json, labels.json,
input_spec.json, the runtime (predict.py and requirements.txt: onnxruntime, tokenizers and
numpy, no torch, no transformers), README.md for the device, and manifest.json: every
file's sha256, versions, the verify figures, the target, the settings and the runtime's
measured footprint (cold start, peak RSS, per-request latency, unpacked size).

Written: OUT/ (the unpacked bundle, plus artifact.json), OUT.tar.gz beside it (the same files
but artifact.json, under one top folder, byte-for-byte reproducible) and OUT.json, the
archive's record: its size and sha256, which the manifest inside it cannot hold.

A model whose verify gates failed is refused (exit 3) unless --force, and then the manifest
says "forced": true and lists the failures.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field

from .. import platforms, tasks
from ..artifacts import MANIFEST as ARTIFACT
from ..artifacts import OutputFolder, sha256, versions, write_json, write_manifest
from ..bundle import requirements
from ..bundle.runtime import fixed_shapes
from ..bundle.runtime.pixels import MAX_IMAGE_PIXELS
from ..bundle.runtime.predict import MAX_TOKENS
from ..data.labels import config_names
from ..device import target_check as checks
from ..errors import CheckFailed, ConfigError, ModelError, OutputError
from ..measure import floor, latency
from ..options import (
    MAX_COLD_STARTS,
    MAX_REQUESTS,
    MAX_THREADS,
    FloorOption,
    TargetOptions,
    result_settings,
)
from ..paths import same as same_path
from ..records import ExportReport, VerifyReport
from ..records.verify_report import Env

log = logging.getLogger(__name__)

# The command's --help (edgetransfer.cli makes the command from the registry).
HELP = """Bundle an exported model for a device: one folder and one deterministic .tar.gz.

\b
Example:
  edgetransfer package --model models/demo/onnx --verify-report models/demo/verify.json \\
      --target linux-aarch64 --out models/demo/bundle
writes models/demo/bundle/, models/demo/bundle.tar.gz (which unpacks to a folder named as
--out's last part: bundle/) and models/demo/bundle.json.
On the device, after `tar xzf bundle.tar.gz && cd bundle` (a bundle from someone else:
`edgetransfer target` it first, which refuses a requirements.txt of anything but pinned,
hashed wheels):
  {install}
  python predict.py "turn the kitchen lights off"

A model whose verify gates failed is refused (exit 3) unless --force; the manifest then
says so. The bundled runtime is measured here in fresh processes (cold start, peak RSS,
per-request latency) and the figures go into manifest.json.
""".format(install=requirements.install_command())

class PackageConfig(TargetOptions, FloorOption):
    """Settings of `edgetransfer package`; each description is the CLI help."""

    model_config = ConfigDict(extra="forbid")

    model: Path = Field(description="An `export` output folder (model.onnx, tokenizer.json, "
                        "config.json with the labels, export.json).")
    out: Path = Field(description="The bundle folder to write; the archive OUT.tar.gz (its "
                      "files under one folder named as OUT's last part) and its record "
                      "OUT.json are written beside it.")
    target: Literal[tuple(platforms.PLATFORMS)] | None = Field(
        None, description="The device's platform (onnxruntime wheels exist for both); "
        "recorded, and checked against the CPU family an int8 model was tuned for [default: "
        "this machine's, the one the measurements are taken on].")
    verify_report: Path | None = Field(None, description="verify.json written by `edgetransfer "
                                       "verify` on this model.onnx; its figures go into the "
                                       "manifest.")
    unverified: bool = Field(False, description="Package without a verify report; the "
                             "manifest says \"verified\": false.")
    force: bool = Field(False, description="Package a model whose verify gates failed; the "
                        "manifest records \"forced\": true and the failures.")
    ort_format: bool = Field(False, description="Also bundle model.ort and its "
                             "required_operators.config (onnxruntime's minimal and mobile "
                             "builds); the export must have written them (--ort-format).")
    max_length: int | None = Field(None, ge=8, le=MAX_TOKENS, description="Token limit the "
                                   "runtime truncates to [default: the one verify scored the "
                                   "model at, else the export's --max-length].")
    check_target: bool = Field(True, description="Check, before writing, that every "
                               "requirement has a wheel for the target and its Python, that "
                               "the pinned onnxruntime runs every operator, and that int8 "
                               "suits the CPU (a blocking finding exits 2).")
    threads: int = Field(1, ge=1, le=MAX_THREADS, description="onnxruntime threads the "
                         "runtime uses by default "
                         "and is measured with (1: one request at a time on a small device, "
                         "and stable figures).")
    measure: bool = Field(True, description="Measure the bundled runtime in fresh processes: "
                          "cold start, peak RSS, per-request latency (a few seconds; the "
                          "figures are this machine's).")
    latency_data: Path | None = Field(None, description="Data to time requests on, read as "
                                      "verify's --data is (CSV/TSV/JSONL/Parquet; CoNLL for "
                                      "tagging) [default: built-in texts of mixed length].")
    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, ge=1, description="Image bundles: the "
                                  "most pixels an image may have, recorded in input_spec.json "
                                  "for the runtime (lower it for a device with little memory: "
                                  f"{MAX_IMAGE_PIXELS / 1e6:g} Mpx decode to "
                                  f"{3 * MAX_IMAGE_PIXELS / 1e6:g} MB) and the limit "
                                  f"--latency-data is read under.")
    # (each is timed: a million is an hour at a few ms)
    latency_requests: int = Field(200, ge=1, le=MAX_REQUESTS, description="One-text requests "
                                  "timed (200: "
                                  "enough for a steady p90 at a few ms each).")
    # (each is a fresh process, about a second)
    cold_starts: int = Field(3, ge=1, le=MAX_COLD_STARTS, description="Fresh processes timed "
                             "from start to first prediction; the median is recorded (3: one "
                             "outlier on a busy machine does not decide it).")
    overwrite: bool = Field(False, description="Replace an existing bundle (folder, archive "
                            "and record).")


def run(cfg: PackageConfig) -> Path:
    from ..measure import footprint

    if cfg.target is None:
        cfg = cfg.model_copy(update={"target": _this_machine()})
        log.info("--target %s (this machine's)", cfg.target)
    model = cfg.model
    config, labels, task, export_record = _read_model(model, cfg)
    kind = task.inputs  # (its reader in the runtime, what the runtime is timed on)
    model_sha = sha256(model / "model.onnx")
    verification = _verification(cfg, model_sha)
    pins, notes, target_check = _pins_and_target(cfg, verification, kind.reader,
                                                 export_record)

    archive, record = beside(cfg.out)
    inputs = (model,) + tuple(p for p in (cfg.verify_report, cfg.latency_data) if p)
    out = OutputFolder(cfg.out, overwrite=cfg.overwrite, inputs=inputs)
    out.check()
    _check_beside(out, (archive, record), inputs, cfg.overwrite)
    out.prepare()
    partial = archive.with_name(f".{archive.name}.partial")
    scratch = Path(tempfile.mkdtemp(prefix="edgetransfer-inputs-"))
    try:
        # --latency-data's inputs (images held as bytes written out), else the probe rows'
        texts = kind.latency_inputs(cfg, task, scratch)
        manifest = _write_bundle(out.work, cfg, task, config, labels, export_record,
                                 verification, pins, notes, texts[0], target_check)
        if cfg.measure:
            log.info("measuring the bundled runtime (%d cold starts, %d requests)",
                     cfg.cold_starts, cfg.latency_requests)
            manifest["measurements"] = footprint.measure(
                out.work, texts, runs=cfg.cold_starts, requests=cfg.latency_requests,
                threads=cfg.threads, reader=kind.reader)
            write_json(out.work / "manifest.json", manifest)
        sizes = _archive(out.work, partial, archive.name, cfg, manifest, kind.reader, task)
        measured = manifest.get("measurements", {})
    except BaseException:
        shutil.rmtree(out.work, ignore_errors=True)
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    final = out.commit()
    os.replace(partial, archive)
    write_json(record, sizes | {"folder": final.name, "target": cfg.target,
                                "verification": _summary(verification),
                                "measurements": manifest.get("measurements")})
    log.info("wrote %s (%.1f MB; unpacked %.1f MB in %s)%s", archive,
             sizes["archive_bytes"] / 2**20, sizes["unpacked_bytes"] / 2**20, final,
             f"; cold start {measured['cold_start_s']:.2f} s, peak RSS "
             f"{measured['peak_rss_mb']:.0f} MB, p50 {measured['latency']['p50_ms']:.2f} ms"
             if measured else "")
    return final


def _read_model(model: Path, cfg: PackageConfig) -> tuple:
    """(config.json, its labels, the task, export.json or None) of the export folder, each
    checked: a model marked degenerate, a --max-length past its positions, files its reader
    needs, refused."""
    _check_model(model, cfg)
    floor.check(model, cfg.allow_degenerate, "package")  # (a model at chance: refused)
    config = _read_json(model / "config.json")
    # (a longer text would index past the model's position table on the device)
    positions = config.get("max_position_embeddings") if isinstance(config, dict) else None
    if cfg.max_length and isinstance(positions, int) and cfg.max_length > positions:
        raise ModelError(f"--max-length {cfg.max_length}: {model} takes at most {positions} "
                         f"tokens; lower it")
    try:
        labels = config_names(config, f"--model {model}")
    except ValueError as e:
        raise ModelError(f"{e}; it names the outputs the runtime prints") from None
    task = tasks.resolve(None, config=config, folder=model, where=f"--model {model}")
    task.inputs.reader.check(model)
    record_file = model / ExportReport.FILE
    export_record = (ExportReport.read(record_file, label=f"--model {record_file}",
                                       error=ModelError) if record_file.exists() else None)
    return config, labels, task, export_record


def _archive(work: Path, partial: Path, name: str, cfg: PackageConfig, manifest: dict,
             reader, task) -> dict:
    """The folder as the deterministic archive `partial`, and the folder's artifact.json
    (sizes, the measured figures): the archive's sizes."""
    from ..bundle.archive import write_archive

    write_archive(work, partial, cfg.out.name, exclude=(ARTIFACT,))
    sizes = {"archive": name, "archive_bytes": partial.stat().st_size,
             "archive_sha256": sha256(partial),
             "unpacked_bytes": sum(p.stat().st_size for p in work.rglob("*")
                                   if p.is_file() and p.name != ARTIFACT)}
    measured = manifest.get("measurements", {})
    write_manifest(work, "bundle", result_settings(cfg), sizes | {
        k: v for k, v in (("cold_start_s", measured.get("cold_start_s")),
                          ("peak_rss_mb", measured.get("peak_rss_mb")),
                          ("p50_ms", measured.get("latency", {}).get("p50_ms")))
        if v is not None}, parents={"model": str(cfg.model)},
        packages=reader.packages, task=task.name)
    return sizes


def _pins_and_target(cfg: PackageConfig, verification: dict, reader,
                     export_record: ExportReport | None) -> tuple[list, list[str], dict | None]:
    """(the runtime's hashed pins, the notes for the manifest, the target check's table or
    None): all decided, and said, before anything is written."""
    specs, notes = _requirements(verification, reader.packages)
    pins = requirements.hashed(specs)  # (each wheel's sha256, from the index)
    quantization = _quantization(export_record)
    # (the tuning finding is a note in the manifest too, also with --no-check-target)
    notes += [r["detail"] for r in checks.tuning(cfg.target, quantization)]
    try:
        target_check = (checks.check(cfg.target, cfg.target_python, cfg.target_cpu, pins,
                                     cfg.model / "model.onnx", _precision(export_record),
                                     quantization)
                        if cfg.check_target else None)
    except ModelError as e:
        raise ModelError(f"{e}; nothing was written") from None
    said = {r["detail"] for r in target_check["rows"]} if target_check else set()
    for note in notes:
        if note not in said:  # (check() has said its own warnings)
            log.warning("%s", note)
    return pins, notes, target_check


def _this_machine() -> str:
    found = platforms.of_machine(platform.machine())
    if found is None:
        raise ConfigError(f"--target: this machine ({platform.machine()}) is not one of "
                          f"{', '.join(platforms.PLATFORMS)}; name the device's")
    return found


def _check_model(model: Path, cfg: PackageConfig) -> None:
    if not model.is_dir():
        raise ModelError(f"--model {model}: no such folder; give an `edgetransfer export` "
                         f"output folder")
    needed = ["model.onnx", "config.json"]
    if cfg.ort_format:
        needed.append("model.ort")
    for name in needed:
        if not (model / name).is_file():
            hint = {"model.ort": "export with --ort-format first"}.get(
                name, "is it an `edgetransfer export` output folder?")
            raise ModelError(f"--model {model}: has no {name}; {hint}")


def _read_json(path: Path, flag: str = "--model"):
    from ..untrusted import read_json

    if not path.exists():
        raise ModelError(f"{flag} {path}: no such file")
    return read_json(path, label=f"{flag} {path}", error=ModelError)  # (bounded, an object)


def _verification(cfg: PackageConfig, model_sha: str) -> dict:
    """The verify figures for this model.onnx, or a refusal."""
    path = cfg.verify_report
    if path is None:
        if not cfg.unverified:
            raise ConfigError("--verify-report is needed (verify.json from `edgetransfer "
                              "verify` on this model); --unverified packages without one and "
                              "the manifest says so")
        return {"verified": False}
    if cfg.unverified:
        raise ConfigError("--verify-report and --unverified: give one of them")
    if not path.exists():
        raise ModelError(f"--verify-report {path}: no such file")
    report = VerifyReport.read(path, label=f"--verify-report {path}", error=ModelError,
                               fix="is it a verify.json? run edgetransfer verify again")
    found = report.covering(model_sha)
    if found is None:
        raise ModelError(f"verify report {path} does not cover this model (sha256 "
                         f"{model_sha[:16]}...); run edgetransfer verify on it")
    failures = report.failures_of(found)
    passed = found.passed is True
    if not passed:
        said = "; ".join(f"{f.gate}: {f.message}" for f in failures) or "its gates failed"
        if not cfg.force:
            raise CheckFailed(f"{cfg.model}/model.onnx failed verify ({said}); nothing was "
                              f"packaged (--force packages it anyway, and the manifest says "
                              f"so)")
        log.warning("packaging a model that failed verify (--force): %s", said)
    # (the manifest keeps verify's figures as verify.json has them)
    figures, written = found.model_dump(exclude_unset=True), report.dump()
    return {"verified": True, "passed": passed, "forced": not passed,
            "report": str(path), "report_sha256": sha256(path),
            "candidate": found.name, "precision": found.precision,
            "failures": [f.model_dump(exclude_unset=True) for f in failures],
            **{k: figures.get(k) for k in ("metrics", "accuracy_drop", "parity", "latency")},
            "reference": written["reference"], "env": written.get("env"),
            # (the length its figures were scored at: the bundle's own, unless told otherwise)
            "max_length": (report.settings or {}).get("max_length")}


def _summary(verification: dict) -> dict:
    return {k: verification.get(k) for k in ("verified", "passed", "forced", "report")
            if k in verification}


def _requirements(verification: dict, packages) -> tuple[list[tuple[str, str]], list[str]]:
    """The runtime's pins, (name, version): onnxruntime as verified, tokenizers (or Pillow)
    and numpy as built (exact: a bundle pins each wheel by its hash)."""
    have = {}
    for name in packages:
        for dist in (name, f"{name}-gpu") if name == "onnxruntime" else (name,):
            try:
                have[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    notes = []
    verified_ort = _verified_onnxruntime(verification.get("env"))
    ort = verified_ort or have["onnxruntime"]
    if verified_ort and verified_ort != have["onnxruntime"]:
        notes.append(f"the verify report used onnxruntime {verified_ort}; this machine has "
                     f"{have['onnxruntime']}: requirements.txt pins the verified one, the "
                     f"measurements here use {have['onnxruntime']}")
    return [(name, ort if name == "onnxruntime" else have[name]) for name in packages], notes


def _verified_onnxruntime(env: dict | None) -> str | None:
    """The onnxruntime version a verify report's "env" (as _verification keeps it) names,
    where it names one."""
    return Env.model_validate(env).onnxruntime if env else None


def _check_beside(out: OutputFolder, paths, inputs, overwrite: bool) -> None:
    """The archive and its record go beside the folder: same rules as the folder."""
    for path in paths:
        if any(same_path(i, path) for i in inputs):  # (however spelt: ./x, a link)
            raise OutputError(f"--out {out.final}: would overwrite the input {path}")
        if path.exists() and not overwrite:
            raise OutputError(f"--out {out.final}: {path} already exists; pass --overwrite "
                              f"to replace it")
        if path.is_dir():
            raise OutputError(f"--out {out.final}: {path} is a folder")


def _write_bundle(work: Path, cfg: PackageConfig, task, config, labels, export_record,
                  verification, pins, notes, first_input, target_check=None) -> dict:
    from ..bundle.runtime import SOURCE
    from ..bundle.runtime.predict import FORMAT, BundleError, Predictor

    model = cfg.model
    accelerator = export_record.accelerator if export_record else None
    ort_files = _copy_model(work, cfg, task, accelerator)
    write_json(work / "labels.json", labels)
    spec = _input_spec(work, model, cfg, task, config, len(labels), verification)
    if accelerator:
        spec |= _accelerator_spec(accelerator, work, spec)
    write_json(work / "input_spec.json", spec)
    shutil.copyfile(SOURCE, work / "predict.py")
    os.chmod(work / "predict.py", 0o755)
    how = "verified" if verification["verified"] else "built"
    (work / requirements.FILE).write_text(requirements.render(pins, (
        f"all the bundled runtime needs (for {cfg.target}); onnxruntime as {how} with.\n"
        f"Install: {requirements.install_command()}\n(wheels only, each checked against "
        f"its sha256; nothing else is resolved)")), encoding="utf-8")
    (work / "README.md").write_text(
        _readme(cfg, task, labels, export_record, verification, pins, spec), encoding="utf-8")
    files = {}
    for f in sorted(p for p in work.rglob("*") if p.is_file()):
        files[f.relative_to(work).as_posix()] = {"sha256": sha256(f), "bytes": f.stat().st_size}
    manifest = {
        "format": FORMAT,
        "kind": "edgetransfer-bundle",
        "task": task.name,
        "target": cfg.target,
        "model": {"file": "model.onnx", "ort_files": ort_files,
                  "precision": _precision(export_record),
                  "runs": "model.ort" if cfg.ort_format else "model.onnx",
                  "quantization": _quantization(export_record),
                  "opset": export_record and export_record.opset, "source": str(model),
                  # export --for an NPU: the profile, its rewrites and its coverage, and the
                  # providers the runtime tries in order (input_spec.json's, as it reads them)
                  "accelerator": accelerator,
                  "providers": spec.get("providers", ["CPUExecutionProvider"]),
                  # the trained model's floor verdict, as its export carries it (a degenerate
                  # one is packaged only with --allow-degenerate: settings say so)
                  "floor": floor.recorded(model)},
        "labels": "labels.json",
        "verification": verification,
        "requirements": [p.spec for p in pins],
        "notes": notes,
        "settings": result_settings(cfg),
        "versions": (versions(*task.inputs.reader.packages)
                     | {"python": platform.python_version()}),
        "files_bytes": sum(f["bytes"] for f in files.values()),  # all but this manifest
        "files": files,
    }
    if target_check is not None:
        manifest["target_check"] = target_check
    write_json(work / "manifest.json", manifest)
    try:  # the runtime's own load, once, before anything is measured or archived
        Predictor(work, threads=cfg.threads).predict([first_input])
    except BundleError as e:
        raise ModelError(f"--model {model}: the bundled runtime cannot use it: {e}") from None
    return manifest


def _copy_model(work: Path, cfg: PackageConfig, task, accelerator: dict | None) -> list[str]:
    """The model and what reads its inputs copied into the bundle; the .ort files' names
    (with --ort-format)."""
    model = cfg.model
    shutil.copyfile(model / "model.onnx", work / "model.onnx")
    task.inputs.reader.copy(model, work)
    if accelerator:  # (an NPU export: its adapter, and its lookups' model where it has one)
        shutil.copyfile(fixed_shapes.__file__, work / "fixed_shapes.py")
        if (model / fixed_shapes.FRONT).is_file():
            shutil.copyfile(model / fixed_shapes.FRONT, work / fixed_shapes.FRONT)
    ort_files = []
    if cfg.ort_format:
        ort_files = ["model.ort"] + sorted(p.name for p in
                                           model.glob("*.required_operators*.config"))
        for name in ort_files:
            shutil.copyfile(model / name, work / name)
    return ort_files


def _accelerator_spec(accelerator: dict, work: Path, spec: dict) -> dict:
    """input_spec.json's fields for an NPU export: the fixed-shape adapter on, the providers
    to try in order (the accelerator's, then the CPU), the lookups' model, and a token limit
    within the bucket (the runtime truncates or windows to it)."""
    out = {"fixed_shapes": True,
           "providers": [accelerator["provider"], "CPUExecutionProvider"]}
    if (work / fixed_shapes.FRONT).is_file():
        out["embeddings"] = fixed_shapes.FRONT
    bucket = accelerator.get("sequence_length")
    if bucket and spec.get("max_length", 0) > bucket:
        log.warning("max_length %d: the model's fixed length is %d tokens; the bundle reads "
                    "at most %d (longer texts truncated, or windowed by a token task)",
                    spec["max_length"], bucket, bucket)
        out["max_length"] = bucket
    return out


def _precision(export_record: ExportReport | None) -> str | None:
    return export_record.precision if export_record else None


def _quantization(export_record: ExportReport | None) -> dict | None:
    """export.json's quantization settings as written (the manifest keeps a copy)."""
    return export_record.dump().get("quantization") if export_record else None


def _input_spec(work: Path, model: Path, cfg, task, config: dict, num_labels: int,
                verification: dict) -> dict:
    """input_spec.json (bundle/spec.py: the spec export and verify score with). Its token
    limit: --max-length, else the one verify scored at (so the figure the README quotes is
    this bundle's), else export's, else 128."""
    from ..bundle import spec

    session = latency.ort_session(work / "model.onnx")  # (an NPU model: through its adapter)
    export_settings = (_read_json(model / ARTIFACT).get("settings", {})
                       if (model / ARTIFACT).exists() else {})
    scored_at = verification.get("max_length")
    max_length = cfg.max_length or scored_at or export_settings.get("max_length") or 128
    if scored_at and max_length != scored_at:
        log.warning("--max-length %d: verify scored this model at %d tokens; its figures may "
                    "differ from this bundle's answers on longer texts", max_length, scored_at)
    return spec.build(task, model, config, *spec.of_session(session), num_labels=num_labels,
                      max_length=max_length, threads=cfg.threads, ort_format=cfg.ort_format,
                      max_image_pixels=cfg.max_image_pixels, files=work)


def _checked(verification: dict, task, spec: dict) -> str:
    """The README's line on what the bundle passed, with verify's figure where it was scored
    as this bundle answers (at its token limit)."""
    if not verification["verified"]:
        checked = "not verified (packaged with --unverified)"
    elif verification["forced"]:
        checked = "FAILED verify and was packaged with --force: see manifest.json"
    else:
        checked = f"passed `edgetransfer verify` ({verification['report']})"
    figure = (verification.get("metrics") or {}).get(task.primary)
    scored, limit = verification.get("max_length"), spec.get("max_length")
    # (verify's figure is what this runtime answers, unless scored at another token limit)
    if isinstance(figure, (int, float)) and (None in (scored, limit) or scored == limit):
        checked += f"; {task.primary} {figure:.4f} as predict.py answers on verify's data"
    return checked


def _labels_line(task, labels: list[str]) -> str:
    """The README's line on what the model outputs: its labels, or a joint model's heads
    (each its task, its count of labels and the labels)."""
    from ..bundle.runtime.predict import head_labels

    per_head = head_labels(labels, task.runtime, "labels.json")
    if per_head is None:
        return f"Labels: {', '.join(labels)}"
    kinds = {h["name"]: h["postprocess"] for h in task.runtime["heads"]}
    return "Heads (one call answers each): " + "; ".join(
        f"{name} ({'a label per text' if kinds[name] == 'softmax-label' else 'spans'}, "
        f"{len(names)} labels: {', '.join(names)})" for name, names in per_head.items())


def _readme(cfg, task, labels, export_record, verification, pins, spec) -> str:
    from ..bundle.runtime.predict import POSTPROCESS

    checked = _checked(verification, task, spec)
    ort_row = ("| model.ort, *.required_operators.config | the model predict.py runs (onnxruntime's"
               " own format, also read by its minimal and mobile builds) |\n"
               if cfg.ort_format else "")
    runs = "model.ort (converted from model.onnx)" if cfg.ort_format else "model.onnx"
    output = " ".join(POSTPROCESS[task.runtime["postprocess"]].__doc__.split())
    reader = task.inputs.reader
    examples, each, prepared = reader.readme(task, spec)  # (by how the runtime reads inputs)
    return f"""# {cfg.out.name}: {task.name} ({task.summary}) for {cfg.target}

{_labels_line(task, labels)}. Model: {runs} ({_precision(export_record) or "?"});
{checked}.

## Run

Needs Python 3 (built with {platform.python_version()}) and requirements.txt, nothing else
(no torch, no transformers): {", ".join(p.spec for p in pins)}: prebuilt wheels, each
checked against the sha256 requirements.txt lists, nothing else resolved. Received this
bundle from someone else? Check it first with `edgetransfer target --bundle .` (pip obeys
option lines inside requirements.txt; that check refuses any).

```bash
python3 -m venv .venv && . .venv/bin/activate
{requirements.install_command()}
{examples}
```

{each} gives one JSON line:
{output}
`python predict.py --help` lists the options (`--top-k`, `--batch-size`, `--threads`).
Exit codes: 0 done, 2 a damaged bundle or unusable input (one line on stderr), 1 a bug.

## Checks

On start, predict.py checks every file manifest.json lists against its size and sha256 and
refuses to run if one was changed or damaged: copy the bundle again.

## Files

| file | what |
| --- | --- |
| model.onnx | the model (onnxruntime) |
{ort_row}{reader.files_row}| labels.json | the class names, in output order |
| input_spec.json | {prepared} |
| predict.py, requirements.txt | the runtime |
| manifest.json | sha256 of every file, versions, the verify figures, settings, measurements |

The measurements in manifest.json were taken on the build machine (its CPU is recorded
beside them); `--benchmark` measures this device.
"""


# The recipe's `package:` section has one field the command has not: which export to pack.
RECIPE_FIELDS = {"variant": (str | None, Field(None, description="Export variant to package "
                                                "[default: the first]."))}


def beside(out: Path) -> tuple[Path, Path]:
    """The files package writes next to its folder: the archive and its record."""
    return out.parent / f"{out.name}.tar.gz", out.parent / f"{out.name}.json"


def plan(section, w) -> list[dict]:
    """The pipeline step (a recipe's `package:`): the chosen export variant, with the
    verify report when the recipe verifies."""
    from ..records.references import Bundle, OnnxModel, Verification

    exported = {m.variant: m.folder for m in w.all(OnnxModel)}  # (one at least: its `needs`)
    variant = section.variant or next(iter(exported))
    if variant not in exported:
        raise ConfigError(f"{w.recipe_file}: package.variant {variant!r} is not an export "
                          f"variant ({', '.join(exported)})")
    verified = w.newest(Verification)
    report = verified.file if verified else None
    config = section.model_dump(exclude={"variant"}) | dict(
        model=exported[variant], out=w.root / "bundle", verify_report=report,
        latency_data=w.files["eval"], max_length=w.recipe.data.max_length,
        max_image_pixels=w.recipe.data.max_image_pixels, overwrite=True)
    return [{"label": "bundle", "config": config, "makes": [Bundle(folder=w.root / "bundle")],
             "beside": list(beside(w.root / "bundle")),
             "inputs": {"model": str(exported[variant]), "latency_data": w.files["eval"],
                        "verify": str(verified.folder) if verified else None}}]
