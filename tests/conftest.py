"""What several test modules share: the tiny model's options, reading a video back."""

import cv2

# An MSReID small enough to build, save and run in a second on a CPU (64 x 32 images),
# with every level and the STN, so that tests cover the whole pair path and the STN's export.
TINY_MODEL = dict(levels=("low", "mid", "high"), image_size=(64, 32), patch_size=(3, 2), widths=(8, 16, 16, 32),
                  depths=(1, 1, 1), similarity_channels=8, reduced_channels=8, fusion_channels=8, embedding_dim=16,
                  use_stn=True)


def read_frames(path):
    """Every frame of a video file, in order."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames
