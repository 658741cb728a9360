import json

from tests.faults.checker import OUTCOMES
from tests.faults.report import main, render


def line(seed: int, valid: bool = True) -> dict:
    counts = dict.fromkeys((*OUTCOMES, "unexpected"), 1)
    return {
        "seed": seed,
        "kinds": ["reset"],
        "clips": counts,
        "docks": counts,
        "valid": valid,
        "seconds": 10.0,
        "refused": {"503": 2, "429": 1},
    }


def test_seeds_that_left_no_result_are_listed_and_fail_the_run(tmp_path):
    assert "1 of 3 failed before the check: seeds [1]" in render([line(0), line(2)], seeds=3)
    results = tmp_path / "faults.jsonl"
    results.write_text("\n".join(json.dumps(x) for x in (line(0), line(2))) + "\n")
    assert main([str(results), "3"]) == 1
    assert main([str(results)]) == 0  # without the count, only what ran is judged
    assert "| clips |" in (tmp_path / "faults.md").read_text()


def test_an_invalid_scenario_fails_the_run(tmp_path):
    results = tmp_path / "faults.jsonl"
    results.write_text(json.dumps(line(0, valid=False)) + "\n")
    assert main([str(results), "1"]) == 1
    assert "1 invalid: seeds [0]" in (tmp_path / "faults.md").read_text()
