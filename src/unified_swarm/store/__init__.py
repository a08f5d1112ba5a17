"""Storage backends behind one protocol (`base.Store`), chosen by the store URL's scheme.

The registry is `config.STORES` (scheme -> backend module and extra); a backend module is
imported only when a store is made, so a missing optional driver costs nothing until it is
asked for, and then says how to install it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..config import Settings
from ..errors import NotInstalled
from .base import Store


def make_store(settings: Settings) -> Store:
    """Build (not yet open) the store the settings name. Raises InvalidInput for a scheme
    no backend serves (Settings.validate), NotInstalled when its extra is missing."""
    backend = settings.validate().backend
    try:
        module = importlib.import_module(backend.module)
    except ImportError as exc:
        if backend.extra is None:
            raise
        raise NotInstalled(f"the {backend.kind} store needs the {backend.extra} extra: "
                           f"pip install 'unified-swarm[{backend.extra}]'") from exc
    build: Callable[[Settings], Store] = module.from_settings
    return build(settings)
