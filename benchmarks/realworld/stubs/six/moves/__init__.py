import urllib.request as _r  # noqa: F401
import urllib as urllib  # noqa: F401
