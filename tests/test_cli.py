"""The command line: listing and inspecting models."""

import json

from medzoo.cli import main


def test_list_names_every_model(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("unet3d_mrbrains", "resnet3d_ixi_age", "resnet3d_ixi_sex", "cae3d_ixi"):
        assert name in out


def test_info_prints_the_spec_as_json(capsys):
    assert main(["info", "unet3d_mrbrains"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input"]["channels"] == ["T1", "T1_IR", "T2_FLAIR"]
    assert info["input"]["spacing_mm"] == [1.0, 1.0, 1.0]
    assert info["output"]["labels"]["4"] == "white matter lesions"


def test_unknown_model_is_a_clean_error(capsys):
    assert main(["info", "unet3d_mrbrain"]) == 2
    assert "Did you mean 'unet3d_mrbrains'" in capsys.readouterr().err
