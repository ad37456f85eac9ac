"""The command line: help at every level, version, option parsing from the config."""

from __future__ import annotations

import json
import subprocess
import sys

from edgetransfer import __version__


def test_version_and_help(cli):
    code, out = cli("--version")
    assert code == 0 and __version__ in out
    code, out = cli("--help")
    assert code == 0 and "finetune" in out and "--debug" in out
    code, out = cli("finetune", "--help")
    assert code == 0
    for flag in ("--method [full|lora|head]", "--freeze-layers", "--lora-targets", "--resume",
                 "--device", "--allow-pickle", "--trust-remote-code", "--overwrite"):
        assert flag in out


def test_help_does_not_import_torch():
    # `--help` must be instant: heavy imports live inside the commands
    code = ("import sys; from edgetransfer.cli import main\n"
            "try: main(['finetune', '--help'])\nexcept SystemExit: pass\n"
            "print(json.dumps('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True,
                         text=True, check=True).stdout.splitlines()[-1]
    assert json.loads(out) is False


def test_unknown_option_is_a_usage_error(cli):
    code, out = cli("finetune", "--train", "x.jsonl", "--out", "o", "--metod", "lora")
    assert code == 2 and "No such option '--metod'" in out and "'--method'" in out


def test_missing_required_option(cli):
    code, out = cli("finetune", "--train", "x.jsonl")
    assert code == 2 and "Missing option '--out'" in out and "Traceback" not in out


def test_comma_lists_and_method_default_lr():
    from edgetransfer.stages.finetune import FinetuneConfig

    cfg = FinetuneConfig(train="t.jsonl", out="o", method="lora", lora_targets="query, value",
                         label_names="neg,pos")
    assert cfg.lora_targets == ["query", "value"] and cfg.label_names == ["neg", "pos"]
    assert cfg.learning_rate == 1e-3
    assert FinetuneConfig(train="t", out="o", lr=3e-5).learning_rate == 3e-5
