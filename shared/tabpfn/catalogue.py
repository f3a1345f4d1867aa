"""What each TabPFN model name is for, for `GET /api/v1/models/available`.

The names themselves come from tabpfn-client (it has no endpoint for them) and so does the
version each name belongs to; this module only words them. A name this table has no words
for is still listed, described by its family and variant as read from the name, so a newer
client's models show up without a change here.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.tabpfn.types import AUTO_MODEL_PATHS

_FAMILIES = {
    "v3.5": "TabPFN-3.5: the newest family, with Thinking mode (API only)",
    "v3": "TabPFN-3: the previous generation",
    "v2.6": "TabPFN-2.6",
    "v2.5": "TabPFN-2.5: the family with the most specialised variants",
    "v2": "TabPFN-2: the first public generation (names without a version are its checkpoints)",
}
_VARIANTS = {
    "default": "the recommended checkpoint of its family",
    "default-2": "an alternative default checkpoint",
    "variant": "an alternative checkpoint, worth trying when the default underfits",
    "real": "fine-tuned on real-world data",
    "real-variant": "an alternative checkpoint fine-tuned on real-world data",
    "large-features-L": "for wide tables (many columns)",
    "large-features-XL": "for very wide tables",
    "large-samples": "for tables with many rows",
    "real-large-features": "fine-tuned on real data, for wide tables",
    "real-large-samples-and-features": "fine-tuned on real data, for large and wide tables",
    "low-skew": "for targets with little skew",
    "quantiles": "tuned for quantile predictions",
    "small-samples": "for small training sets",
}


@dataclass(frozen=True)
class ModelInfo:
    """One model name: its family (version), whether it is a fast variant, and its purpose."""

    name: str
    family: str
    fast: bool
    description: str


def describe(name: str, version: str) -> ModelInfo:
    """Words for one model name of `version` (as tabpfn-client reads the name)."""
    if name in AUTO_MODEL_PATHS:
        return ModelInfo(
            name, "auto", fast=False, description="the TabPFN service chooses the model"
        )
    fast = f"{version}-fast_" in name
    family = _FAMILIES.get(version, f"TabPFN {version}")
    _, separator, variant = name.partition("_")
    if not separator:  # a bare checkpoint hash of the oldest family
        purpose = "a legacy checkpoint, kept for reproducibility"
    else:
        purpose = _VARIANTS.get(variant, f"the {variant!r} variant")
    speed = "; faster and lighter, for latency-sensitive use" if fast else ""
    return ModelInfo(name, version, fast=fast, description=f"{family}: {purpose}{speed}.")
