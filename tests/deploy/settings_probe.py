"""Which environment variables does `python -m <module>` really read? Runs the module's real
`main()` with the server start replaced (uvicorn.run, the faust worker, the admin's asyncio.run),
records every pydantic-settings class built and every `REDRESS_*` variable read directly, and
prints them as JSON. Run it with no REDRESS_* variables set, in a scratch directory:

    python tests/deploy/settings_probe.py redress_intake
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import sys
from typing import Any

from pydantic_settings import BaseSettings


def probe(module: str) -> dict[str, list[str]]:
    from redress_config import env_var_names

    built: list[type[BaseSettings]] = []
    direct: set[str] = set()

    original_init = BaseSettings.__init__

    def recording_init(self: BaseSettings, *args: Any, **kwargs: Any) -> None:
        built.append(type(self))
        original_init(self, *args, **kwargs)

    BaseSettings.__init__ = recording_init  # type: ignore[method-assign]

    environ_cls: Any = type(os.environ)
    original_getitem = environ_cls.__getitem__

    def recording_getitem(self: Any, key: str) -> str:
        if isinstance(key, str) and key.startswith("REDRESS_"):
            direct.add(key)
        return original_getitem(self, key)  # type: ignore[no-any-return]

    environ_cls.__getitem__ = recording_getitem

    import uvicorn
    from faust.worker import Worker

    uvicorn.run = lambda app, **kwargs: None  # built, not served
    Worker.execute_from_commandline = lambda self: None  # type: ignore[method-assign]
    if module == "redress_kafka.admin":

        def no_io(coro: Any, **kwargs: Any) -> list[str]:
            coro.close()
            return []

        asyncio.run = no_io  # type: ignore[assignment]
    runpy.run_module(module, run_name="__main__", alter_sys=True)

    names: set[str] = set(direct)
    for cls in built:
        names.update(env_var_names(cls))
    return {
        "variables": sorted(names),
        "settings_classes": sorted({f"{c.__module__}.{c.__qualname__}" for c in built}),
    }


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1])))
