"""A no-op stand-in for matplotlib (time_sequence_prediction plots its predictions)."""
from typing import Any


def use(*args: Any, **kwargs: Any) -> None:
    return None
