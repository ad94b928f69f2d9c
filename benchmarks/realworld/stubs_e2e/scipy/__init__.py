"""Stand-in: kitti_process_detection imports scipy.spatial.Delaunay for label boxes, not used here."""
