"""The reference backend: a real server speaking the default golden-path protocol, with fault injection.

``faults`` is light (the CLI's ``--help`` lists ``FAULTS``); ``server`` imports Starlette and uvicorn.
"""

from bot.reference.faults import FAULTS, Faults, parse_faults

__all__ = ["FAULTS", "Faults", "parse_faults"]
