"""Stand-in: data.kitti_common imports skimage.io for reading images, not used here."""
