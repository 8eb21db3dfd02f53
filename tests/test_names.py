import pytest

from kerasviz import names


def test_normalize_ignores_case_and_punctuation():
    assert names.normalize("ResNet50_V2") == names.normalize("resnet50v2") == "resnet50v2"


def test_lookup_finds_by_normalized_name():
    assert names.lookup("resnet50-v2", ["ResNet50V2", "VGG16"], "model") == "ResNet50V2"


@pytest.mark.parametrize(
    "name, choices, expected",
    [
        ("ResNet50V3", ["ResNet50V2", "ResNet101V2", "VGG16"], "Did you mean 'ResNet50V2'"),
        ("conv3_block4", ["conv3_block4_out", "conv3_block4_1_conv", "pool1"], "conv3_block4_out"),
    ],
)
def test_lookup_error_suggests_close_names(name, choices, expected):
    with pytest.raises(ValueError, match=expected):
        names.lookup(name, choices, "model")


def test_suggestions_are_capped_at_three():
    choices = [f"block{i}_conv1" for i in range(10)]
    assert len(names.suggestions("block_conv1", choices)) == 3


def test_filter_names_uses_shell_patterns():
    assert names.filter_names(["ResNet50", "ResNet50V2", "VGG16"], "resnet*") == ["ResNet50", "ResNet50V2"]
