"""Every `msreid` command answers a user's mistake with one line naming the path or flag, and exit status 2.

The sweep runs each command in-process on missing, empty, corrupt, wrong-kind and
out-of-range inputs; a traceback (or a second line) is a failure.
"""

import json
import pathlib

import keras
import pytest

from conftest import TINY_MODEL
from keras_msreid.cli import main
from keras_msreid.models import MSReID
from keras_msreid.synthetic import write_market1501
from keras_msreid.training.config import TrainConfig


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny dataset, a valid model, and broken or foreign files to feed the commands."""
    base = tmp_path_factory.mktemp("inputs")
    root = base / "synth"
    write_market1501(root, num_ids=8, num_cameras=2, seed=0, image_size=(64, 32))
    model = MSReID.from_options(num_classes=4, **TINY_MODEL)
    model.build()
    model.save(base / "model.keras")
    data = (base / "model.keras").read_bytes()
    (base / "truncated.keras").write_bytes(data[: len(data) // 2])
    (base / "empty.keras").write_bytes(b"")
    (base / "text.keras").write_text("not a model")
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    sequential.save(base / "sequential.keras")
    (base / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (base / "a_file").write_text("x")
    (base / "bad_type.yaml").write_text(f"root: {root}\nepochs: ten\n")
    (base / "bad_size.yaml").write_text(f"root: {root}\nimage_size: 5\n")
    (base / "broken.yaml").write_text("epochs: [\n")
    (base / "bad_model.yaml").write_text(f"root: {root}\nmodel: {{parts: two}}\n")
    (base / "peer_levels.yaml").write_text(f"root: {root}\nmodel: {{backbone: MobileNetV2, levels: [high]}}\n")
    (base / "model_size.yaml").write_text(f"root: {root}\nmodel: {{image_size: [64, 32]}}\n")
    (base / "old_levels.yaml").write_text(f"root: {root}\nlevels: [high]\n")
    (base / "not_a_store").mkdir()
    (base / "not_a_store" / "holiday.jpg").write_bytes(b"mine")
    (base / "bad_metrics").mkdir()
    (base / "old_store").mkdir()  # a store of an earlier keras_msreid
    (base / "old_store" / "manifest.json").write_text('{"format": "keras_msreid.feature_store", "version": 1}')
    (base / "bad_metrics" / "metrics.json").write_text("{truncated")
    return {"base": base, "root": root, "model": base / "model.keras"}


def cases(f):
    """(argv, words the one error line must contain) for each bad input."""
    model, base = str(f["model"]), f["base"]
    root = f["root"]
    ds = ["--dataset", "market1501", "--root", str(root)]
    query = str(next((root / "query").iterdir()))
    train = ["train", *ds, "--out", str(base / "run")]
    return [
        # train: every numeric option range-checked up front, config types checked when read.
        (train + ["--steps-per-epoch", "-1"], ["--steps-per-epoch", ">= 0"]),
        (train + ["--k", "1"], ["--k", ">= 2"]),
        (train + ["--p", "1"], ["--p", ">= 2"]),
        (train + ["--learning-rate", "-0.1"], ["--learning-rate", "> 0"]),
        (train + ["--learning-rate", "nan"], ["--learning-rate"]),
        (train + ["--epochs", "-1"], ["--epochs", ">= 0", "0: 160, or more on a small training set"]),
        (train + ["--initial-weights", str(base / "missing.keras")], ["no model file", "missing.keras"]),
        (train + ["--initial-weights", str(base / "truncated.keras")], ["truncated.keras", "not a .keras model file"]),
        (train + ["--protocol", "market"], ["--protocol", "market1501, cuhk01 or cuhk03_sgs"]),
        (train + ["--image-size", "100", "50"], ["--image-size", "divisible by 16"]),
        (train + ["--levels", "top"], ["--levels", "low, mid, high"]),
        (train + ["--parts", "0"], ["--parts", ">= 1"]),
        (train + ["--backbone", "ResNet50"], ["--backbone", "MobileNetV2"]),
        (train + ["--backbone", "MobileNetV2", "--stn"], ["unknown model options ['use_stn']", "MobileNetV2"]),
        (["train", "--config", str(base / "bad_model.yaml")], ["bad_model.yaml", "model: parts", "integer", "'two'"]),
        (["train", "--config", str(base / "peer_levels.yaml")], ["peer_levels.yaml", "['levels']", "MobileNetV2"]),
        (["train", "--config", str(base / "model_size.yaml")], ["model_size.yaml", "image_size", "top level"]),
        (["train", "--config", str(base / "old_levels.yaml")],
         ["old_levels.yaml", "levels is a model option: set it under model:"]),
        (train + ["--eval-every", "-2"], ["--eval-every"]),
        (train + ["--dataset", "market"], ["--dataset", "market1501"]),
        (["train", "--config", str(base / "bad_type.yaml")], ["bad_type.yaml", "epochs", "integer", "'ten'"]),
        (["train", "--config", str(base / "bad_size.yaml")], ["bad_size.yaml", "image_size"]),
        (["train", "--config", str(base / "broken.yaml")], ["broken.yaml", "not a YAML file"]),
        (["train", "--config", str(base / "missing.yaml")], ["missing.yaml", "No such file"]),
        (["train", "--dataset", "market1501", "--root", str(base / "nowhere")], ["nowhere"]),
        (["train", "--root", str(base / "nowhere")], ["nowhere", "Dataset folder not found"]),
        (["train", *ds, "--out", str(base / "a_file")], ["a_file", "is a file"]),
        (["train", *ds, "--out", str(base / "not_a_store")], ["not_a_store", "not a run folder"]),
        (["train", "--dataset", "market1501"], ["--root"]),
        # evaluate, summary, export, search, report: a model file that is not one.
        (["evaluate", str(base / "missing.keras"), *ds], ["missing.keras", "no model file"]),
        (["evaluate", str(base / "truncated.keras"), *ds], ["truncated.keras", "not a .keras model file"]),
        (["evaluate", str(base / "empty.keras"), *ds], ["empty.keras", "not a .keras model file"]),
        (["evaluate", str(base / "text.keras"), *ds], ["text.keras", "not a .keras model file"]),
        (["evaluate", str(base / "sequential.keras"), *ds], ["sequential.keras", "not an MSReID model"]),
        (["evaluate", str(base), *ds], ["is a folder"]),
        (["evaluate", model, "--dataset", "market1501", "--root", str(base / "nowhere")], ["nowhere"]),
        (["summary", str(base / "truncated.keras")], ["truncated.keras"]),
        (["summary", "--parts", "0"], ["--parts", "parts must be an integer >= 1"]),
        (["summary", model, "--stn"], ["--stn", "give MODEL or the flags, not both"]),
        (["export", str(base / "truncated.keras"), "--out", str(base / "export")], ["truncated.keras"]),
        (["validate", str(base / "nowhere"), *ds], ["nowhere", "does not exist"]),
        (["validate", str(root), *ds], ["no metadata.json", str(root)]),
        (["export", model, "--out", str(base / "export"), "--modes", "int8"], ["calibration images", "--calibration-root"]),
        (["export", model, "--out", str(base / "a_file"), "--modes", "float32"], ["a_file"]),
        (["search", model, "--query", str(base / "corrupt.jpg"), "--store", str(base / "store"),
          "--gallery", str(root / "query")], ["--query", "corrupt.jpg", "decodes"]),
        (["search", model, "--query", query, "--store", str(base / "not_a_store"), "--gallery", str(root / "query")],
         ["not_a_store", "holds no feature store"]),
        (["search", model, "--query", query, "--store", str(base / "store"), "--gallery", str(base / "nowhere")],
         ["--gallery", "nowhere"]),
        (["search", model, "--query", query, "--store", str(base / "empty_store")], ["no feature store", "--gallery"]),
        (["search", str(base / "truncated.keras"), "--query", query, "--store", str(base / "store"),
          "--gallery", str(root / "query")], ["truncated.keras"]),
        (["search", model, "--store", str(base / "empty_store")], ["--query", "--gallery", "--remove"]),
        (["search", model, "--query", query, "--store", str(base / "old_store")],
         ["old_store", "version-1", "extract the gallery again"]),
        (["search", model, "--store", str(base / "old_store"), "--gallery", str(root / "query")],
         ["old_store", "version-1"]),
        (["search", model, "--store", str(base / "merged"), "--merge", str(base / "nowhere")],
         ["--merge", "nowhere", "no feature store"]),
        (["search", model, "--store", str(base / "merged"), "--merge", str(base / "old_store")],
         ["old_store", "version-1"]),
        (["search", model, "--store", str(base / "merged"), "--merge", str(base / "store"), "--gallery",
          str(root / "query")], ["--merge", "--gallery", "give one of them"]),
        (["report", str(base / "not_a_store")], ["not_a_store", "no config.yaml"]),
        (["report", model, *ds, "--out", str(base / "report"), "--compare", str(base / "bad_metrics")],
         ["bad_metrics", "metrics.json", "not valid JSON"]),
        (["report", str(base / "missing.keras"), *ds, "--out", str(base / "report")], ["missing.keras"]),
        (["report", model], ["a model file needs --dataset, --root, --out"]),
        (["datasets", "market1501", str(base / "nowhere")], ["nowhere"]),
        (["datasets", "market", str(root)], ["market", "market1501"]),
        (["synth", "--out", str(base / "s"), "--video", str(base / "street.gif")], ["--video", "street.gif"]),
        (["synth", "--out", str(base / "s"), "--cameras", "12"], ["num_cameras"]),
        (["synth", "--out", str(base / "a_file")], ["a_file"]),
    ]


# argparse's own errors (bad choice, non-numeric, out of range) print usage first; still one error line.
ARGPARSE_CASES = [
    (["evaluate", "m.keras", "--dataset", "market1501", "--root", "r", "--shortlist", "0"], "--shortlist"),
    (["evaluate", "m.keras", "--dataset", "market1501", "--root", "r", "--fusion-weight", "2"], "--fusion-weight"),
    (["evaluate", "m.keras", "--dataset", "market1501", "--root", "r", "--protocol", "x"], "--protocol"),
    (["export", "m.keras", "--out", "o", "--modes", "int4"], "--modes"),
    (["export", "m.keras", "--out", "o", "--calibration-count", "0"], "--calibration-count"),
    (["report", "r", "--top", "-1"], "--top"),
    (["search", "m.keras", "--query", "x.jpg", "--store", "s", "--top", "0"], "--top"),
    (["synth", "--out", "o", "--video-frames", "0"], "--video-frames"),
    (["train", "--epochs", "ten"], "--epochs"),
]


def test_every_user_error_is_one_line_with_exit_status_2(files, capsys):
    failures = []
    for argv, words in cases(files):
        code = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "Skipping"))]
        command = f"msreid {argv[0]}: error: "
        ok = code == 2 and len(lines) == 1 and lines[0].startswith(command) and all(w in lines[0] for w in words)
        if not ok or "Traceback" in err:
            failures.append(f"{argv} -> {code}: {err[-600:]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("argv,flag", ARGPARSE_CASES)
def test_a_bad_flag_value_is_refused_by_the_parser(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and flag in errors[0] and "Traceback" not in err


def test_rerun_with_options_that_cannot_resume_changes_nothing(files, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    config = TrainConfig(dataset="market1501", root=str(files["root"]), out_dir=str(run), model={"levels": ("high",)})
    config.save(run / "config.yaml")
    (run / "checkpoint").mkdir()
    before = (run / "config.yaml").read_bytes()
    code = main(["train", "--config", str(run / "config.yaml"), "--levels", "low", "high"])
    err = capsys.readouterr().err
    assert code == 2
    assert "holds a run with other options (model.levels ['high'] there, ['low', 'high'] here)" in err
    assert f"msreid train --config {run / 'config.yaml'}" in err
    assert (run / "config.yaml").read_bytes() == before
    assert sorted(path.name for path in run.iterdir()) == ["checkpoint", "config.yaml"]


def test_a_run_too_big_for_the_dataset_is_refused_before_its_folder_is_written(files, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--dataset", "market1501", "--root", str(files["root"]), "--out", str(run), "--p", "16",
            "--steps-per-epoch", "2"]  # the dataset has 4 training identities
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "needs at least p=16 identities per batch" in err and "Traceback" not in err
    assert not run.exists()  # a corrected rerun with the same --out starts afresh


def test_a_corrupt_query_among_good_ones_is_reported_and_skipped(files, tmp_path, capsys, caplog):
    good = sorted(str(path) for path in (files["root"] / "query").iterdir())[:2]
    argv = ["search", str(files["model"]), "--query", good[0], str(files["base"] / "corrupt.jpg"), good[1],
            "--store", str(tmp_path / "s"), "--gallery", str(files["root"] / "query"), "--top", "3"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "Skipping" in caplog.text and "corrupt.jpg" in caplog.text and "Traceback" not in captured.err
    assert [line.split(" ", 1)[1] for line in captured.out.splitlines() if line.startswith("query ")] == good
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert sum(segment["count"] for segment in manifest["segments"]) == len(list((files["root"] / "query").iterdir()))


def test_stores_extracted_apart_merge_into_one_that_ranks_them_all(files, tmp_path, capsys):
    images = sorted((files["root"] / "query").iterdir())
    halves = [tmp_path / "cam1", tmp_path / "cam2"]
    for half, chosen in zip(halves, (images[: len(images) // 2], images[len(images) // 2 :])):
        half.mkdir()
        for image in chosen:
            (half / image.name).write_bytes(image.read_bytes())
    model = str(files["model"])
    for half in halves:
        assert main(["search", model, "--store", str(tmp_path / f"store_{half.name}"), "--gallery", str(half)]) == 0
    stores = [str(tmp_path / f"store_{half.name}") for half in halves]
    assert main(["search", model, "--store", str(tmp_path / "all"), "--merge", *stores]) == 0
    assert f"store {tmp_path / 'all'}: {len(images)} images" in capsys.readouterr().out
    assert main(["search", model, "--store", str(tmp_path / "all"), "--query", str(images[0]),
                 "--top", str(len(images))]) == 0
    ranked = [line.split()[-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert sorted(ranked) == sorted(str(half / image.name) for half in halves for image in half.iterdir())
    other = tmp_path / "other.keras"
    other.write_bytes(files["model"].read_bytes() + b"\0")  # another file, so another model
    assert main(["search", str(other), "--store", str(tmp_path / "all2"), "--merge", *stores]) == 2
    assert "was extracted with another model than" in capsys.readouterr().err


def test_bugs_keep_their_traceback(monkeypatch):
    """Only user errors are turned into one line: a programming error must stay visible."""
    import keras_msreid.cli.datasets as datasets_command

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(datasets_command, "run", broken)
    with pytest.raises(KeyError):
        main(["datasets", "market1501", str(pathlib.Path("."))])
