"""A user's budget ("latency=1ms size=5MB kept=0.97") and how a candidate is held to it.

latency: batch-1 p50 on the measuring CPU (one onnxruntime thread); size: the bundle's
model and tokenizer as the archive stores them (gzip); kept: the candidate's task metric
over the teacher's on the same eval data. A constraint left out is not judged.
"""

from __future__ import annotations

import gzip
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..untrusted import clip, shorten

UNITS = {"latency": {"us": 1e-3, "ms": 1.0, "s": 1e3},
         "size": {"kb": 1e-3, "mb": 1.0, "gb": 1e3}}
HOW = "e.g. \"latency=1ms size=5MB kept=0.97\" (latency in us/ms/s, size in KB/MB/GB, kept a share)"


@dataclass(frozen=True)
class Budget:
    latency_ms: float | None = None
    size_mb: float | None = None  # 10**6 bytes, as archives and downloads are counted
    kept: float | None = None

    def misses(self, c: dict) -> dict:
        """constraint -> by how much `c` (p50_ms, bundle_bytes, kept) misses it; {} if met."""
        out = {}
        if self.latency_ms is not None and c.get("p50_ms") is not None \
                and c["p50_ms"] > self.latency_ms:
            out["latency"] = f"{c['p50_ms']:.3f} ms, {c['p50_ms'] - self.latency_ms:.3f} ms over"
        if self.size_mb is not None and c.get("bundle_bytes") is not None \
                and c["bundle_bytes"] / 1e6 > self.size_mb:
            mb = c["bundle_bytes"] / 1e6
            out["size"] = f"{mb:.2f} MB, {mb - self.size_mb:.2f} MB over"
        if self.kept is not None and c.get("kept") is None:
            out["kept"] = "not measured (the teacher scored 0)"
        elif self.kept is not None and c["kept"] < self.kept:
            out["kept"] = f"{c['kept']:.4f}, {100 * (self.kept - c['kept']):.2f} points short"
        return out

    def as_dict(self) -> dict:
        return {"latency_ms": self.latency_ms, "size_mb": self.size_mb, "kept": self.kept}


def parse(text: str) -> Budget:
    """'latency=1ms size=5MB kept=0.97' (spaces or commas between) -> Budget."""
    values: dict = {}
    for part in [p for p in re.split(r"[\s,]+", text.strip()) if p]:
        key, eq, value = part.partition("=")
        key = key.lower()
        if not eq or key not in ("latency", "size", "kept") or key in values:
            raise ConfigError(f"--budget {clip(text)}: cannot read {shorten(part)}; give each of "
                              f"latency=, size=, kept= at most once, {HOW}")
        if key == "kept":
            number = _number(value, text) / (100 if value.endswith("%") else 1)  # 97% = 0.97
            if not 0 < number <= 1:
                raise ConfigError(f"--budget {clip(text)}: kept={clip(value, 60)} is not a "
                                  f"share in (0, 1]; {HOW}")
            values[key] = number
            continue
        m = re.fullmatch(r"([0-9.]+(?:e-?[0-9]+)?)\s*([a-zA-Z]*)", value)
        unit = (m.group(2).lower() if m else "") or ("ms" if key == "latency" else "mb")
        if not m or unit not in UNITS[key]:
            raise ConfigError(f"--budget {clip(text)}: {key}={clip(value, 60)} has no known unit; "
                              f"{HOW}")
        number = _number(m.group(1), text) * UNITS[key][unit]
        if not math.isfinite(number) or number <= 0:  # (1e308s in ms is infinity)
            raise ConfigError(f"--budget {clip(text)}: {key}={clip(value, 60)} must be a finite "
                              f"number above 0")
        values[key] = number
    if not values:
        raise ConfigError(f"--budget: empty; {HOW}")
    return Budget(latency_ms=values.get("latency"), size_mb=values.get("size"),
                  kept=values.get("kept"))


def _number(value: str, text: str) -> float:
    try:
        number = float(value.rstrip("%"))
    except ValueError:
        number = math.nan
    if not math.isfinite(number):  # not a number, or "nan", "inf", "1e999"
        raise ConfigError(f"--budget {clip(text)}: {shorten(value)} is not a number; {HOW}")
    return number


def bundle_bytes(folder: Path) -> int:
    """What the bundle's archive spends on the model and its tokenizer: their gzip size
    (the archive is a .tar.gz; its runtime files are the same for every candidate)."""
    total = 0
    for name in ("model.onnx", "tokenizer.json"):
        f = Path(folder) / name
        if f.exists():
            total += len(gzip.compress(f.read_bytes(), compresslevel=9, mtime=0))
    return total
