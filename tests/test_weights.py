import pytest

from workflow_scripts.fetch_weights import download
from workflow_scripts.models import build_model
from workflow_scripts.stage import InputError
from workflow_scripts.weights import find_weights, weight_file, weight_url


def test_names_and_urls_follow_keras():
    assert weight_file("mobilenet", 0.25) == "mobilenet_2_5_224_tf_no_top.h5"
    assert weight_url("densenet121").endswith(
        "/densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert weight_file("alexnet") is None


def test_missing_weights_on_an_offline_node_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(InputError, match=r"mobilenet_1_0_224_tf_no_top\.h5 is in neither .*"
                       r"snakemake --cores 1 fetch_weights"):
        find_weights("mobilenet", 1.0, tmp_path / "weights")
    with pytest.raises(InputError, match="fetch_weights"):
        build_model("mobilenet", 32, weights="imagenet", weights_dir=tmp_path / "weights")


def test_download_writes_through_a_temporary_name_and_reuses_the_keras_cache(
        tmp_path, monkeypatch):
    source = tmp_path / "remote.h5"
    source.write_bytes(b"weights")
    target = tmp_path / "weights" / "mobilenet_1_0_224_tf_no_top.h5"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    download(source.as_uri(), target)
    assert target.read_bytes() == b"weights"
    assert find_weights("mobilenet", 1.0, tmp_path / "weights") == target
    cached = tmp_path / "keras" / "models" / weight_file("densenet121")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    copy = tmp_path / "weights" / cached.name
    download("http://unreachable.invalid/never", copy)
    assert copy.read_bytes() == b"cached"
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, copy.name])
