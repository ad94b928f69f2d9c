"""Stand-in: imported by the repo's data utilities; no cv2 call is on the harness's path."""
from typing import Any


def __getattr__(name: str) -> Any:
    raise AttributeError(f"cv2 stand-in: {name} is not available in the harness")
