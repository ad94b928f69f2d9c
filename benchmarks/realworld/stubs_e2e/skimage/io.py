"""Stand-in for skimage.io (unused on the harness's path)."""
