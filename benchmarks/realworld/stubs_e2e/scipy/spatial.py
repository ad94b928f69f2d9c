"""Stand-in for scipy.spatial: Delaunay is only used to label points in boxes, not on this path."""
from typing import Any


class Delaunay:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("scipy stand-in: Delaunay is not available in the harness")
