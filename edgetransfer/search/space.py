"""The candidates a search explores: student depth x quantization x vocabulary pruning.

A candidate is one export of one distilled student; students are shared by every
candidate of their depth (one distillation per shape), and one teacher by all.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

# The number formats, by name: export's --quantize and --int4-embeddings. Between int8 and
# int4 sits int8 layers with 4-bit embedding tables: int8's speed, most of int4's saving.
FORMATS = {"int8-dynamic": ("int8-dynamic", False),
           "int8-static": ("int8-static", False),
           "int8-int4emb": ("int8-dynamic", True),
           "int4": ("int4", False)}


@dataclass(frozen=True)
class Variant:
    depth: int
    format: str  # a FORMATS key
    prune: bool

    @property
    def name(self) -> str:
        return f"{self.depth}L-{self.format}" + ("-pruned" if self.prune else "")

    def export_settings(self) -> dict:
        quantize, int4_embeddings = FORMATS[self.format]
        return {"quantize": quantize, "int4_embeddings": int4_embeddings}


def variants(depths: list[int], formats: list[str], prune: list[bool]) -> list[Variant]:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"--formats {','.join(formats)}: {unknown[0]} is not one; use "
                          f"{', '.join(FORMATS)}")
    if not depths or not formats or not prune:
        raise ConfigError("--depths, --formats and --prune each need at least one value")
    # (a value given twice is one candidate, not two of one name)
    return [Variant(d, f, p) for d in sorted(set(depths)) for f in dict.fromkeys(formats)
            for p in dict.fromkeys(prune)]
