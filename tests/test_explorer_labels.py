"""What test labels mean per dataset: the one rule the map, captions and votes follow."""

import pytest

from explorer.labels import label_scheme


def test_mnist_digits():
    s = label_scheme("mnist", {"label_names": [str(d) for d in range(10)]})
    assert s.categorical and s.describe(7) == "digit 7" and s.subject == "a digit"


def test_frey_frames_are_not_classes():
    s = label_scheme("frey", {})
    assert not s.categorical and s.describe(1000) == "frame 1000" and s.noun == "frame" and s.subject == "a face"


@pytest.mark.parametrize("meta, categorical, text", [
    ({"label_names": ["cat", "dog"]}, True, "class dog"),
    ({"label_names": None}, False, "label 1"),
    ({}, False, "label 1"),
])
def test_image_folders(meta, categorical, text):
    s = label_scheme("folder", meta)
    assert s.categorical == categorical and s.describe(1) == text and s.subject == "an image"


def test_folder_image_outside_any_class():
    s = label_scheme("folder", {"label_names": ["cat", "dog"]})
    assert s.name(-1) == "none" and s.name(5) == "5"
