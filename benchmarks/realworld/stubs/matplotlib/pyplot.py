"""No-op pyplot: every function accepts anything and draws nothing."""
from typing import Any


class _Nothing:
    def __call__(self, *args: Any, **kwargs: Any) -> "_Nothing":
        return self

    def __getattr__(self, name: str) -> "_Nothing":
        return self


def __getattr__(name: str) -> Any:
    return _Nothing()
