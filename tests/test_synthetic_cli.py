"""The `msreid synth` command."""

import json

from keras_msreid.cli import main

ARGS = ["--ids", "4", "--cameras", "2", "--seed", "3", "--height", "32", "--width", "16"]


def test_writes_the_dataset_and_prints_counts(tmp_path, capsys):
    out_dir = tmp_path / "synthetic"
    assert main(["synth", "--out", str(out_dir)] + ARGS) == 0
    captured = capsys.readouterr()
    counts = json.loads((out_dir / "msreid_synthetic.json").read_text())["counts"]
    assert f"{counts['train_images']} training images, {counts['query_images']} queries" in captured.out
    assert captured.err.splitlines()[-1].startswith("rendered ")  # progress goes to stderr
    assert len(list((out_dir / "query").iterdir())) == counts["query_images"]


def test_refuses_a_non_empty_folder_unless_asked(tmp_path, capsys):
    out_dir = tmp_path / "synthetic"
    out_dir.mkdir()
    (out_dir / "old.txt").write_text("")
    assert main(["synth", "--out", str(out_dir)] + ARGS) == 2
    assert f"msreid synth: error: output directory {out_dir} exists and is not empty" in capsys.readouterr().err
    assert main(["synth", "--out", str(out_dir), "--overwrite"] + ARGS) == 0
    assert not (out_dir / "old.txt").exists()


def test_bad_camera_count(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "s"), "--cameras", "12"]) == 2
    assert "num_cameras must be between 2 and 9" in capsys.readouterr().err


def test_writes_a_video_of_test_identities(tmp_path, capsys):
    import cv2

    out_dir, video = tmp_path / "synthetic", tmp_path / "street.avi"
    args = ["synth", "--out", str(out_dir), "--ids", "6", "--cameras", "2", "--video", str(video), "--video-people", "2",
            "--video-frames", "5"]
    assert main(args) == 0
    test_ids = sorted({int(path.name[:4]) for path in (out_dir / "query").iterdir()})
    assert f"wrote {video}: 5 frames with identities {test_ids[:2]}" in capsys.readouterr().out
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()
