"""The command line's argument errors: a misspelled option is named (with the
closest known one) instead of being reported as a missing required option,
abbreviations are not accepted, and a value out of range states the range."""

from __future__ import annotations

import pytest

from sphcnn import cli


def _error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_misspelled_option_is_named_not_reported_as_a_missing_one(capsys):
    line = _error(capsys, ["train", "--wrokdir", "runs/x"])
    assert line == "sphcnn train: error: unrecognized arguments: --wrokdir (did you mean --workdir?)", line


def test_an_abbreviated_option_is_not_accepted(capsys):
    line = _error(capsys, ["train", "--workdir", "runs/x", "--max-step", "5"])
    assert line == "sphcnn: error: unrecognized arguments: --max-step 5", line
    line = _error(capsys, ["eval", "--work", "runs/x"])
    assert "unrecognized arguments: --work" in line and "did you mean --workdir?" in line, line


def test_a_missing_required_option_is_still_reported(capsys):
    line = _error(capsys, ["train", "--max-steps", "5"])
    assert line == "sphcnn train: error: the following arguments are required: --workdir", line


def test_a_value_out_of_range_states_the_range(tmp_path, capsys):
    assert cli.main(["train", "--workdir", str(tmp_path / "run"), "--max-steps", "-5"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("'max_steps' = -5 is out of range; expected >= 0 (0: num_epochs decides)"), line
