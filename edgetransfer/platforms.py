"""The device platforms a bundle is built for (package/search/target --target), and the
names a machine of each reports (Python's platform.machine(): Linux says x86_64/aarch64,
Windows AMD64, macOS arm64).

Plain data: export's CPU families (convert.quantize.TARGETS), package, search, target and
the device checks all read it from here.
"""

from __future__ import annotations

# platform -> the machine names it goes by, its Linux name (the wheel tags' arch) first
PLATFORMS = {"linux-x86_64": ("x86_64", "amd64"),
             "linux-aarch64": ("aarch64", "arm64")}


def arch(platform: str) -> str:
    """The platform's CPU architecture as wheel tags and /proc name it (x86_64, aarch64)."""
    return PLATFORMS[platform][0]


def of_machine(machine: str) -> str | None:
    """The platform of a machine name (platform.machine(), any case), or None."""
    return next((p for p, names in PLATFORMS.items() if machine.lower() in names), None)
