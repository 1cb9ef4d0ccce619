"""Synthetic pedestrians: a built-in ReID dataset and test videos, numpy + OpenCV only.

`write_market1501` writes a Market-1501-layout dataset of rendered people seen by
several cameras; `write_pedestrian_video` writes a video of rendered people walking
across a scene, with ground-truth boxes, for the edge demo. No TensorFlow here: the
edge demo's tests reuse this package where TensorFlow is absent.

Example:

>>> from keras_msreid.synthetic import write_market1501
>>> manifest = write_market1501("/tmp/msreid_synth", num_ids=20, num_cameras=4, seed=0)
>>> manifest["counts"]["train_ids"]
10
"""

from keras_msreid.synthetic.appearance import Appearance, identity_appearance, sample_appearance
from keras_msreid.synthetic.camera import CameraStyle, apply_camera, camera_style, draw_background, sample_camera_style
from keras_msreid.synthetic.crop import render_crop, render_distractor, render_junk
from keras_msreid.synthetic.market import write_market1501
from keras_msreid.synthetic.person import draw_person
from keras_msreid.synthetic.video import write_pedestrian_video
