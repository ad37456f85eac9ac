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
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field

from .. import tasks
from ..artifacts import MANIFEST as ARTIFACT
from ..artifacts import OutputFolder, sha256, versions, write_json, write_manifest
from ..bundle import inputs as bundle_inputs
from ..bundle import requirements
from ..bundle.runtime.pixels import MAX_IMAGE_PIXELS
from ..bundle.runtime.predict import MAX_TOKENS
from ..convert.quantize import precision_of
from ..data.labels import config_names
from ..device import target_check as checks
from ..errors import CheckFailed, ConfigError, DataError, ModelError, OutputError
from ..measure import floor
from ..options import (MAX_COLD_STARTS, MAX_REQUESTS, MAX_THREADS, FloorOption, TargetOptions,
                       result_settings)
from ..paths import same as same_path

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

TARGETS = ("linux-x86_64", "linux-aarch64")


class PackageConfig(TargetOptions, FloorOption):
    """Settings of `edgetransfer package`; each description is the CLI help."""

    model_config = ConfigDict(extra="forbid")

    model: Path = Field(description="An `export` output folder (model.onnx, tokenizer.json, "
                        "config.json with the labels, export.json).")
    out: Path = Field(description="The bundle folder to write; the archive OUT.tar.gz (its "
                      "files under one folder named as OUT's last part) and its record "
                      "OUT.json are written beside it.")
    target: Literal["linux-x86_64", "linux-aarch64"] | None = Field(
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
                                   "runtime truncates to [default: the export's --max-length, "
                                   "the length its metric was measured at].")
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
    task = tasks.resolve(None, config=config, folder=model,
                         where=f"--model {model}")
    kind = bundle_inputs.kind_of(task)
    _check_inputs(model, kind)
    export_record = _read_json(model / "export.json") if (model / "export.json").exists() else {}
    model_sha = sha256(model / "model.onnx")
    verification = _verification(cfg, model_sha)
    pins, notes, target_check = _pins_and_target(cfg, verification, kind, export_record)
    scratch = None
    texts = [] if kind == "image" else _latency_texts(cfg, task)  # (images: read below,
    # once the output folder is claimed)

    archive = cfg.out.parent / f"{cfg.out.name}.tar.gz"
    record = cfg.out.parent / f"{cfg.out.name}.json"
    inputs = (model,) + tuple(p for p in (cfg.verify_report, cfg.latency_data) if p)
    out = OutputFolder(cfg.out, overwrite=cfg.overwrite, inputs=inputs)
    out.check()
    _check_beside(out, (archive, record), inputs, cfg.overwrite)
    out.prepare()
    partial = archive.with_name(f".{archive.name}.partial")
    try:
        if kind == "image":  # the data's own files, else the probe images written out
            import tempfile

            scratch = Path(tempfile.mkdtemp(prefix="edgetransfer-images-"))
            texts = _image_files(cfg, task, scratch)
        manifest = _write_bundle(out.work, cfg, task, config, labels, export_record,
                                 verification, pins, notes, texts[0], target_check)
        if cfg.measure:
            log.info("measuring the bundled runtime (%d cold starts, %d requests)",
                     cfg.cold_starts, cfg.latency_requests)
            manifest["measurements"] = footprint.measure(
                out.work, texts, runs=cfg.cold_starts, requests=cfg.latency_requests,
                threads=cfg.threads, kind=kind)
            write_json(out.work / "manifest.json", manifest)
        sizes = _archive(out.work, partial, archive.name, cfg, manifest, kind, task)
        measured = manifest.get("measurements", {})
    except BaseException:
        shutil.rmtree(out.work, ignore_errors=True)
        partial.unlink(missing_ok=True)
        raise
    finally:
        if scratch is not None:
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


def _archive(work: Path, partial: Path, name: str, cfg: PackageConfig, manifest: dict,
             kind: str, task) -> dict:
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
        packages=bundle_inputs.PACKAGES[kind], task=task.name)
    return sizes


def _pins_and_target(cfg: PackageConfig, verification: dict, kind: str,
                     export_record: dict) -> tuple[list, list[str], dict | None]:
    """(the runtime's hashed pins, the notes for the manifest, the target check's table or
    None): all decided, and said, before anything is written."""
    specs, notes = _requirements(verification, bundle_inputs.PACKAGES[kind])
    pins = requirements.hashed(specs)  # (each wheel's sha256, from the index)
    quantization = export_record.get("quantization")
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


def _latency_texts(cfg: PackageConfig, task) -> list:
    """What the text runtime is timed on: a text, or a (text, pair) tuple (the task's
    reader, so a recipe's eval file of any task times real inputs; a tagger's rows carry
    their words joined as "text")."""
    from ..bundle.runtime.predict import BundleError, read_texts
    from ..data import conll

    if (cfg.latency_data is not None and cfg.latency_data.suffix.lower() == ".txt"
            and not task.claims_data(conll.columns_of(cfg.latency_data) or [])):
        # a .txt is CoNLL columns for a task that reads words, else one text a line (as the
        # runtime's --input reads it)
        try:
            return read_texts(cfg.latency_data)
        except BundleError as e:
            raise DataError(f"--latency-data {e}") from None
    rows = (task.read_eval(str(cfg.latency_data), None, cfg) if cfg.latency_data
            else task.probe_rows)
    return [(r["text"], r["text_pair"]) if r.get("text_pair") else r["text"] for r in rows]


def _this_machine() -> str:
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                      platform.machine().lower())
    if f"linux-{arch}" not in TARGETS:
        raise ConfigError(f"--target: this machine ({platform.machine()}) is not one of "
                          f"{', '.join(TARGETS)}; name the device's")
    return f"linux-{arch}"


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


def _check_inputs(model: Path, kind: str) -> None:
    """The files the runtime reads its kind of input with (a tokenizer, an image processor)."""
    for name, hint in bundle_inputs.NEEDED[kind].items():
        if not (model / name).is_file():
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
    report = _read_json(path, "--verify-report")
    candidates = report.get("candidates") if isinstance(report, dict) else None
    if not isinstance(candidates, list):
        raise ModelError(f"--verify-report {path}: has no \"candidates\" list; is it a "
                         f"verify.json?")
    found = next((c for c in candidates if isinstance(c, dict)
                  and c.get("sha256") == model_sha), None)
    if found is None:
        raise ModelError(f"verify report {path} does not cover this model (sha256 "
                         f"{model_sha[:16]}...); run edgetransfer verify on it")
    failures = [f for f in report.get("failures") or [] if isinstance(f, dict)
                and f.get("model") == found.get("name")]
    passed = found.get("passed") is True
    if not passed:
        said = "; ".join(f"{f.get('gate')}: {f.get('message')}" for f in failures) \
            or "its gates failed"
        if not cfg.force:
            raise CheckFailed(f"{cfg.model}/model.onnx failed verify ({said}); nothing was "
                              f"packaged (--force packages it anyway, and the manifest says "
                              f"so)")
        log.warning("packaging a model that failed verify (--force): %s", said)
    return {"verified": True, "passed": passed, "forced": not passed,
            "report": str(path), "report_sha256": sha256(path),
            "candidate": found.get("name"), "precision": found.get("precision"),
            "failures": failures,
            **{k: found.get(k) for k in ("metrics", "accuracy_drop", "parity", "latency")},
            "reference": report.get("reference"), "env": report.get("env")}


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
    reader = "tokenizers" if "tokenizers" in packages else "pillow"
    return [("onnxruntime", ort), (reader, have[reader]), ("numpy", have["numpy"])], notes


def _verified_onnxruntime(env) -> str | None:
    """The onnxruntime version a verify report's "env" names, where it names one."""
    if not isinstance(env, dict):
        return None
    for scope in (env, env.get("versions")):
        if isinstance(scope, dict) and isinstance(scope.get("onnxruntime"), str):
            return scope["onnxruntime"]
    return None


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


def _image_files(cfg, task, scratch: Path) -> list[str]:
    """Image paths to time the runtime on: --latency-data's (checked by the task's reader;
    images held as bytes are written to `scratch`), else the task's probe images."""
    from datasets import Image

    if cfg.latency_data is None:
        images = [r["image"] for r in task.probe_rows]
    else:
        ds = task.read_eval(str(cfg.latency_data), None, cfg)
        images = ds.cast_column("image", Image(decode=False))["image"]
    paths = []
    for i, image in enumerate(images):
        if isinstance(image, dict) and image.get("path") and Path(image["path"]).is_file():
            paths.append(image["path"])
            continue
        target = scratch / f"{i:05d}.png"
        if isinstance(image, dict):
            target.write_bytes(image["bytes"])
        else:
            image.save(target)
        paths.append(str(target))
    return paths


def _write_bundle(work: Path, cfg: PackageConfig, task, config, labels, export_record,
                  verification, pins, notes, first_input, target_check=None) -> dict:
    from ..bundle.runtime import SOURCE
    from ..bundle.runtime.predict import FORMAT, BundleError, Predictor

    model = cfg.model
    shutil.copyfile(model / "model.onnx", work / "model.onnx")
    bundle_inputs.copy_files(bundle_inputs.kind_of(task), model, work)
    ort_files = []
    if cfg.ort_format:
        ort_files = ["model.ort"] + sorted(p.name for p in
                                           model.glob("*.required_operators*.config"))
        for name in ort_files:
            shutil.copyfile(model / name, work / name)
    write_json(work / "labels.json", labels)
    spec = _input_spec(work, model, cfg, task, config, len(labels))
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
                  "quantization": export_record.get("quantization"),
                  "opset": export_record.get("opset"), "source": str(model)},
        "labels": "labels.json",
        "verification": verification,
        "requirements": [p.spec for p in pins],
        "notes": notes,
        "settings": result_settings(cfg),
        "versions": (versions(*bundle_inputs.PACKAGES[bundle_inputs.kind_of(task)])
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


def _precision(export_record: dict) -> str | None:
    q = export_record.get("quantization") or {}
    return q.get("precision") or precision_of(q.get("mode"))


def _input_spec(work: Path, model: Path, cfg, task, config: dict, num_labels: int) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(work / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    kind = bundle_inputs.kind_of(task)
    max_length = None
    if kind == "text":
        export_settings = (_read_json(model / ARTIFACT).get("settings", {})
                           if (model / ARTIFACT).exists() else {})
        max_length = cfg.max_length or export_settings.get("max_length") or 128
    return {
        "model": "model.onnx",
        **({"model_ort": "model.ort"} if cfg.ort_format else {}),
        # what the runtime does after the model (bundle/runtime/predict.py POSTPROCESS)
        "task": {"name": task.name, **task.runtime},
        "labels": "labels.json",
        "num_labels": num_labels,
        "inputs": [{"name": i.name, "type": i.type, "shape": i.shape}
                   for i in session.get_inputs()],
        "token_type_ids": any(i.name == "token_type_ids" for i in session.get_inputs()),
        "output": "logits" if "logits" in outputs else outputs[0],
        **bundle_inputs.spec_fields(kind, work, model, max_length, config, session,
                                    cfg.max_image_pixels),
        "threads": cfg.threads,
    }


def _readme(cfg, task, labels, export_record, verification, pins, spec) -> str:
    from ..bundle.runtime.predict import POSTPROCESS

    if not verification["verified"]:
        checked = "not verified (packaged with --unverified)"
    elif verification["forced"]:
        checked = "FAILED verify and was packaged with --force: see manifest.json"
    else:
        checked = f"passed `edgetransfer verify` ({verification['report']})"
    ort_row = ("| model.ort, *.required_operators.config | the model predict.py runs (onnxruntime's"
               " own format, also read by its minimal and mobile builds) |\n"
               if cfg.ort_format else "")
    runs = "model.ort (converted from model.onnx)" if cfg.ort_format else "model.onnx"
    output = " ".join(POSTPROCESS[task.runtime["postprocess"]].__doc__.split())
    pairs = (" (or text pair, from a file with a second text column)"
             if task.runtime.get("pairs") else "")
    kind = bundle_inputs.kind_of(task)
    if kind == "image":
        h, w = spec["image"]["size"]
        examples = ("python predict.py photo.jpg scan.png          # image files, or folders\n"
                    "python predict.py --input images/ > predictions.jsonl   # also a .txt of "
                    "paths\npython predict.py --benchmark 200 --input images/     # latency "
                    "and memory here")
        each = "Each image"
        prepared = (f"images: RGB, resized to {w}x{h} (Pillow filter "
                    f"{spec['image']['resample']}), scaled and normalised; threads")
    else:
        examples = (f'python predict.py "{task.probe_rows[1]["text"]}"\n'
                    "python predict.py --input texts.jsonl > predictions.jsonl   # also .csv, "
                    ".tsv, .txt\npython predict.py --benchmark 200 --input texts.jsonl       "
                    "# latency and memory here")
        each = f"Each text{pairs}"
        prepared = f"inputs, padding, truncation at {spec['max_length']} tokens, threads"
    return f"""# {cfg.out.name}: {task.name} ({task.summary}) for {cfg.target}

Labels: {", ".join(labels)}. Model: {runs} ({_precision(export_record) or "?"});
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
{ort_row}{bundle_inputs.FILES[kind]}| labels.json | the class names, in output order |
| input_spec.json | {prepared} |
| predict.py, requirements.txt | the runtime |
| manifest.json | sha256 of every file, versions, the verify figures, settings, measurements |

The measurements in manifest.json were taken on the build machine (its CPU is recorded
beside them); `--benchmark` measures this device.
"""


# The recipe's `package:` section has one field the command has not: which export to pack.
RECIPE_FIELDS = {"variant": (str | None, Field(None, description="Export variant to package "
                                                "[default: the first]."))}


def plan(section, w) -> list[dict]:
    """The pipeline step (a recipe's `package:`): the chosen export variant, with the
    verify report when the recipe verifies."""
    exported = w.made.get("exports") or {}
    if not exported:
        raise ConfigError(f"{w.recipe_file}: package needs an export step to take the model "
                          f"from")
    variant = section.variant or next(iter(exported))
    if variant not in exported:
        raise ConfigError(f"{w.recipe_file}: package.variant {variant!r} is not an export "
                          f"variant ({', '.join(exported)})")
    report = w.made.get("verify_report")
    config = section.model_dump(exclude={"variant"}) | dict(
        model=exported[variant], out=w.root / "bundle", verify_report=report,
        latency_data=w.files["eval"], max_length=w.recipe.data.max_length,
        max_image_pixels=w.recipe.data.max_image_pixels, overwrite=True)
    return [{"label": "bundle", "config": config, "inputs": {
        "model": str(exported[variant]), "verify": str(report.parent) if report else None,
        "latency_data": w.files["eval"]}}]
