"""Time the README's install commands in a fresh venv, as a newcomer runs them.

    python bench/install.py [--readme README.md] [--warm] [--keep]
    python bench/install.py --render-only bench/results/install-<time>.json

Reads the fenced bash block under "## Install" in the README, so that what is measured is what
is documented; copies the working tree (tracked and untracked files, not ignored ones) into a
temporary folder, and runs the block's lines there one by one with an empty pip cache. For each
line: wall and CPU seconds, the machine's load meanwhile (the box is shared: the load says how
much of the wall time was waiting), whether pip backtracked (its "looking at multiple versions"
notice, and any package it fetched in more than one version), where every file came from
(network, local disk, pip's cache) and the venv's size after it. Then the stack's first import
and a second one: what byte-compiling on first use costs, where pip was told not to.
With --warm the same again in a second fresh venv, with the cache the first run filled.

This machine's pip configuration (config files, PIP_FIND_LINKS) is set aside, so packages come
from the public index. One exception: where a line's --index-url host does not resolve (PyTorch's
CPU index is not reachable from every machine), that option is replaced by the machine's own
find-links (PIP_FIND_LINKS) and the JSON says so: the torch wheel then comes from local disk.

Writes bench/results/install-<time>.json, pip's logs beside it, and the "install" section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import write_section  # noqa: E402

GOAL_S = 90  # issue 27: the README's install commands, fresh venv, 2 cores
# pip's settings that say how to reach the index, not what to install: kept
PIP_TRANSPORT = ("PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES",
                 "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_PROXY", "PIP_TRUSTED_HOST")
INDEX_OPTION = re.compile(r"(?<!\S)(--index-url|--extra-index-url|-i)[ =](\S+)")
BACKTRACK = re.compile(r"looking at multiple versions of (\S+)")
# "Downloading x.whl (12.0 MB)", "Using cached ...", "Processing /opt/wheels/x.whl", after the
# log's time stamp; newer pips fetch "x.whl.metadata" alone while they resolve
FILE = re.compile(r"^(?:\S+)?\s*(Downloading|Using cached|Processing) (\S+?)"
                  r"(?: \(([\d.]+) (kB|MB|GB|bytes)\))?$")
ARCHIVE = re.compile(r"\.(whl|tar\.gz|zip)(\.metadata)?$")
UNITS = {"bytes": 1e-6, "kB": 1e-3, "MB": 1.0, "GB": 1e3}
# what a first stage imports; timed twice after the install: the first run compiles to byte-code
# what pip did not (all of it, where pip was told --no-compile), the second finds it done
FIRST_USE = ("python -c 'import torch, transformers, datasets, peft, onnxruntime, sklearn, "
             "optimum.onnxruntime, edgetransfer.cli'")


def install_block(readme: Path) -> list[str]:
    """The command lines of the first bash block under '## Install', comments dropped."""
    text = readme.read_text(encoding="utf-8")
    section = re.search(r"^## Install\b.*?^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    if not section:
        sys.exit(f"bench/install.py: no '## Install' section with a ```bash block in {readme}")
    lines, pending = [], ""
    for raw in section.group(1).splitlines():
        line = pending + strip_comment(raw).strip()
        pending = line[:-1].rstrip() + " " if line.endswith("\\") else ""
        if line and not pending:
            lines.append(line)
    return lines


def strip_comment(line: str) -> str:
    """The line up to an unquoted '#' that starts a word (shell's rule)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def resolves(url: str) -> bool:
    try:
        socket.getaddrinfo(urlparse(url).hostname, 443)
        return True
    except (OSError, UnicodeError):
        return False


def stand_in(line: str, find_links: str | None) -> tuple[str, str | None]:
    """The line as run: an unreachable index swapped for the machine's find-links."""
    for option, url in INDEX_OPTION.findall(line):
        if resolves(url):
            continue
        if not find_links:
            sys.exit(f"bench/install.py: {url} cannot be reached and PIP_FIND_LINKS names no "
                     "local wheels to stand in for it; run where it can be reached")
        line = line.replace(f"{option} {url}", f"--find-links {find_links}")
        line = line.replace(f"{option}={url}", f"--find-links {find_links}")
        return line, (f"{urlparse(url).hostname} does not resolve here: {option} {url} "
                      f"replaced by --find-links {find_links}")
    return line, None


def pip_env(cache: Path, bin_dir: Path) -> dict:
    # a newcomer's shell: no PYTHONDONTWRITEBYTECODE (set on some machines; Python would then
    # compile on every start what pip --no-compile left out)
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith("PIP_") or k in PIP_TRANSPORT)
           and k != "PYTHONDONTWRITEBYTECODE"}
    own_venv = env.pop("VIRTUAL_ENV", None)
    path = [p for p in env.get("PATH", "").split(os.pathsep)
            if p and not (own_venv and p.startswith(own_venv)) and not p.startswith(str(ROOT))]
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_CACHE_DIR=str(cache),
               PATH=os.pathsep.join([str(bin_dir), *path]))
    return env


class LoadSampler:
    """The 1-minute load average, sampled every 2 s while a command runs."""

    def __init__(self):
        self.samples, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(2.0):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return round(sum(self.samples) / len(self.samples), 2)


def timed(cmd: str, cwd: Path, env: dict, log: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with LoadSampler() as load, log.open("w") as out:
        rc = subprocess.run(["bash", "-ec", cmd], check=False, cwd=cwd, env=env, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"rc": rc, "wall_s": round(time.monotonic() - start, 1), "cpu_s": round(cpu, 1),
            "load_1min_mean": load.mean}


def dist_name(filename: str) -> tuple[str, str]:
    stem = ARCHIVE.sub("", Path(filename).name)
    name, _, rest = stem.partition("-")
    return name.lower().replace("_", "-"), rest.split("-")[0]


def read_pip_log(log: Path) -> dict:
    """What pip's log says: files by origin, versions per package, backtracking."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    origin = {"Downloading": "network", "Using cached": "cache", "Processing": "local disk"}
    # pip 23 logs a hit in its HTTP cache as "Downloading" too: with a warm cache, "network"
    # counts what pip fetched, from its cache or not
    files, versions = {"network": [], "cache": [], "local disk": []}, {}
    for line in text.splitlines():
        m = FILE.match(line)
        if not m or (m.group(1) == "Processing" and not m.group(2).startswith("/")):
            continue
        kind, where = origin[m.group(1)], m.group(2)
        if kind == "local disk" and not ARCHIVE.search(where):
            continue  # the project's own folder
        size = round(float(m.group(3)) * UNITS[m.group(4)], 1) if m.group(3) else None
        if kind == "local disk":
            size = round(Path(where).stat().st_size / 1e6, 1) if Path(where).exists() else None
        files[kind].append({"file": Path(where).name, "mb": size})
        name, version = dist_name(where)
        versions.setdefault(name, set()).add(version)
    return {
        "backtracked_on": sorted(set(BACKTRACK.findall(text))),
        "fetched_more_than_one_version": {n: sorted(v) for n, v in versions.items()
                                          if len(v) > 1},
        "network": {"files": len(files["network"]),
                    "mb": round(sum(f["mb"] or 0 for f in files["network"]), 1)},
        "cache": {"files": len(files["cache"])},
        "local_disk": files["local disk"],
    }


def du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True,
                         check=False).stdout
    return round(int(out.split()[0]) / 1024, 1) if out else 0.0


def venv_facts(venv: Path) -> dict:
    if not venv.exists():
        return {}
    site = next(venv.glob("lib/python*/site-packages"))
    dists = [p.name[: -len(".dist-info")] for p in site.glob("*.dist-info")]
    caches = [str(p) for p in venv.rglob("__pycache__")]
    pycache_kib = 0
    if caches:
        out = subprocess.run(["du", "-sck", *caches], capture_output=True, text=True,
                             check=True).stdout
        pycache_kib = int(out.splitlines()[-1].split()[0])
    torch = [d for d in dists if d.lower().startswith("torch-")]
    return {"du_mib": du_mib(venv), "torch_mib": du_mib(site / "torch"),
            "pycache_mib": round(pycache_kib / 1024, 1), "distributions": len(dists),
            "torch": torch[0].split("-", 1)[1] if torch else None,
            "nvidia_or_triton": sorted(d for d in dists
                                       if d.lower().startswith(("nvidia", "triton")))}


def one_run(lines: list[str], tree: Path, cache: Path, logs: Path, label: str,
            find_links: str | None, base_python: str) -> dict:
    bin_dir = tree.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "python3"):  # the README's "python" is the base interpreter
        if not (bin_dir / name).exists():
            (bin_dir / name).symlink_to(base_python)
    venv = tree / ".venv"
    shutil.rmtree(venv, ignore_errors=True)
    env = pip_env(cache, bin_dir)
    steps = []
    for i, line in enumerate(lines, 1):
        if venv.exists() and "VIRTUAL_ENV" not in env:  # what `. .venv/bin/activate` did
            env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
        ran, note = stand_in(line, find_links)
        pip_log = logs / f"{label}-{i}-pip.log"
        env["PIP_LOG"] = str(pip_log)  # pip's verbose log, with times; the console stays quiet
        print(f"[{label}] {ran}", flush=True)
        step = {"command": line, "ran": ran, "stand_in": note,
                **timed(ran, tree, env, logs / f"{label}-{i}-console.log")}
        step.update(read_pip_log(pip_log), venv=venv_facts(venv))
        print(f"[{label}]   {step['wall_s']} s wall, {step['cpu_s']} s CPU, load "
              f"{step['load_1min_mean']}, rc {step['rc']}", flush=True)
        steps.append(step)
        if step["rc"]:
            break
    first_use = []
    if all(s["rc"] == 0 for s in steps) and (venv / "bin/edgetransfer").exists():
        for n in (1, 2):
            first_use.append({"command": FIRST_USE, "run": n,
                              **timed(FIRST_USE, tree, env, logs / f"{label}-import-{n}.log")})
    return {"cache": label, "steps": steps, "first_use": first_use,
            "wall_s": round(sum(s["wall_s"] for s in steps), 1),
            "pip_install_wall_s": round(sum(s["wall_s"] for s in steps
                                            if " install " in f" {s['command']} "), 1),
            "venv": venv_facts(venv)}  # after the imports: what first use compiled


def copy_tree(dest: Path) -> None:
    """The working tree as a fresh clone plus uncommitted work would have it."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    for rel in filter(None, (f.decode() for f in listed)):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def render(r: dict) -> str:
    variant = "" if r["section"] == "install" else f", {r['section']}"
    out = [f"## Install from a fresh venv (bench/install.py{variant}), {r['date'][:10]}", "",
           (f"The Install block of {Path(r['readme']).name} (its lines below) run one by one "
           "in a fresh copy of the working tree "
           f"({r['host']['nproc']} cores, Python {r['host']['python']}), pip's configuration "
           "on this machine set aside so that packages come from PyPI. Goal (issue 27): the "
           f"install lines at most {GOAL_S} s with no backtracking; the venv's size stated. "
           "Load is the 1-minute load average meanwhile: above the core count, the wall time "
           "includes waiting for other work on the box; CPU s is this command's own. Fetched: "
           "what pip's log calls a download (older pips log a hit in their cache so too)."), ""]
    for note in {s["stand_in"] for run in r["runs"] for s in run["steps"] if s["stand_in"]}:
        out += [f"Stand-in: {note}; that wheel came from local disk (column 'local').", ""]
    for run in r["runs"]:
        venv, used = run["steps"][-1]["venv"], run["venv"]
        out += [(f"**{run['cache']} pip cache**: install lines {run['pip_install_wall_s']} s "
                f"(goal {GOAL_S} s), all lines {run['wall_s']} s. The venv: "
                f"{venv.get('du_mib', 0) / 1024:.2f} GiB ({venv.get('distributions')} "
                f"distributions, torch {venv.get('torch')}, "
                f"{len(venv.get('nvidia_or_triton') or [])} nvidia/triton ones, "
                f"{venv.get('pycache_mib')} MiB of byte-code); "
                f"{used.get('du_mib', 0) / 1024:.2f} GiB after the first import "
                f"({used.get('pycache_mib')} MiB of byte-code)."), "",
                ("| line | wall s | CPU s | load | fetched MB (files) | local | cache files "
                 "| backtracked | >1 version |"),
                "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |"]
        for s in run["steps"]:
            local = ", ".join(f"{f['file']} ({f['mb']} MB)" for f in s["local_disk"]) or "-"
            multi = ", ".join(f"{n} {'/'.join(v)}" for n, v in
                              s["fetched_more_than_one_version"].items()) or "none"
            out.append(f"| `{s['command']}` | {s['wall_s']} | {s['cpu_s']} | "
                       f"{s['load_1min_mean']} | {s['network']['mb']} ({s['network']['files']})"
                       f" | {local} | {s['cache']['files']} | "
                       f"{', '.join(s['backtracked_on']) or 'no'} | {multi} |")
        for u in run["first_use"]:
            out.append(f"| the stack's {'first' if u['run'] == 1 else 'second'} import | "
                       f"{u['wall_s']} | {u['cpu_s']} | {u['load_1min_mean']} | | | | | |")
        out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md",
                    help="the markdown file whose '## Install' bash block is run")
    ap.add_argument("--warm", action="store_true",
                    help="then again in a second fresh venv with the pip cache filled")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    ap.add_argument("--results-md", type=Path, default=ROOT / "bench/RESULTS.md")
    ap.add_argument("--section", default="install",
                    help="names the JSON and the RESULTS.md section (another --readme: another "
                         "name, e.g. install-compiled)")
    ap.add_argument("--render-only", type=Path, metavar="JSON")
    args = ap.parse_args()
    if args.render_only:
        r = json.loads(args.render_only.read_text(encoding="utf-8"))
        write_section(args.results_md, render(r), r["section"])
        print(render(r))
        return
    lines = install_block(args.readme)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = args.out / f"{args.section}-{stamp}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    tmp = Path(tempfile.mkdtemp(prefix="edgetransfer-install-"))
    try:
        tree, cache = tmp / "edgetransfer", tmp / "pip-cache"
        copy_tree(tree)
        runs = [one_run(lines, tree, cache, logs, "cold", os.environ.get("PIP_FIND_LINKS"),
                        base_python)]
        if args.warm and all(s["rc"] == 0 for s in runs[0]["steps"]):
            runs.append(one_run(lines, tree, cache, logs, "warm",
                                os.environ.get("PIP_FIND_LINKS"), base_python))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    r = {"date": datetime.now().isoformat(timespec="seconds"), "section": args.section,
         "readme": str(args.readme),
         "lines": lines, "goal_s": GOAL_S, "logs": str(logs),
         "host": {"nproc": os.cpu_count(), "python": sys.version.split()[0],
                  "base_python": base_python},
         "pip_settings_kept": sorted(k for k in os.environ if k in PIP_TRANSPORT),
         "runs": runs}
    path = args.out / f"{args.section}-{stamp}.json"
    path.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    write_section(args.results_md, render(r), r["section"])
    print(render(r))
    print(f"wrote {path}")
    if any(s["rc"] for run in runs for s in run["steps"]):
        sys.exit("bench/install.py: a line failed; see " + str(logs))


if __name__ == "__main__":
    main()
