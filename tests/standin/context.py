"""The shared objects every route handler needs, bundled so handlers stay plain functions."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ConfigStore
from .faults import Faults
from .state import Store


@dataclass
class Context:
    """Runtime config, data store and fault state of one running stand-in."""

    config: ConfigStore
    store: Store
    faults: Faults
    access_log: bool = False
