"""A device run rehearsed on this machine: a throwaway sshd on 127.0.0.1 (Debian's
openssh-server, its own host and user keys in a temp folder, this user's account, never any
other address) and an ssh_config naming it as a board. With arm_emulation.python_wrapper as
the remote Python it is "an ARM board over SSH" without a board: what the tests and
bench/device_ssh.py measure through.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..errors import EnvironmentProblem

SSHD = "/usr/sbin/sshd"


def available() -> str | None:
    """Why a rehearsal cannot run here, or None."""
    if not Path(SSHD).exists():
        return "openssh-server is not installed (apt-get install openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install openssh-client)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_board(folder: Path, alias: str = "testboard", key: str = "user"):
    """Start the sshd; yield the ssh_config file that names it `alias` (log in with the
    `key` key pair: "user" is authorised, "stranger" is not). Stopped on exit."""
    why = available()
    if why:
        raise EnvironmentProblem(why)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("host", "user", "stranger"):
        if not (folder / name).exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "user.pub").read_text())
    os.chmod(folder / "authorized_keys", 0o600)
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host'}\n"
                      f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
                      f"PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                      f"PidFile {folder / 'sshd.pid'}\nStrictModes no\nUsePAM no\n"
                      f"PermitRootLogin prohibit-password\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # (privilege separation wants it)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                raise EnvironmentProblem(f"the rehearsal sshd stopped: "
                                         f"{proc.stderr.read().decode()[-200:]}")
            time.sleep(0.1)
        else:
            raise EnvironmentProblem("the rehearsal sshd did not start within 10 s")
        ssh_config = folder / f"ssh_config-{key}"
        ssh_config.write_text(
            f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {getpass.getuser()}\n"
            f"  IdentityFile {folder / key}\n  IdentitiesOnly yes\n"
            f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
        yield ssh_config
    finally:
        proc.kill()
        proc.wait(timeout=10)


def ssh_on_path(folder: Path, ssh_config: Path) -> Path:
    """A folder holding an `ssh` that reads `ssh_config` (as ~/.ssh/config would be read):
    put it first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "ssh"
    wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {ssh_config} \"$@\"\n")
    wrapper.chmod(0o755)
    return folder
