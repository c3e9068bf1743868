"""`split_done`: which runs an interrupted benchmark keeps and which it runs again."""

from dataclasses import dataclass

from seqlab.bench import split_done


@dataclass(frozen=True)
class Case:
    model: str
    seed: int
    steps: int = 10


def test_rows_answering_a_case_are_kept_in_plan_order_and_the_rest_run():
    cases = [Case("a", 0), Case("a", 1), Case("b", 0)]
    rows = [{"model": "b", "seed": 0, "steps": 10, "mse": 0.2}, {"model": "a", "seed": 0, "steps": 10, "mse": 0.1}]
    done, todo = split_done(cases, rows)
    assert [r["mse"] for r in done] == [0.1, 0.2]
    assert todo == [Case("a", 1)]


def test_a_changed_setting_or_a_row_without_the_field_runs_again():
    rows = [{"model": "a", "seed": 0, "steps": 5}, {"model": "a", "seed": 1}]
    done, todo = split_done([Case("a", 0), Case("a", 1)], rows)
    assert done == [] and todo == [Case("a", 0), Case("a", 1)]
