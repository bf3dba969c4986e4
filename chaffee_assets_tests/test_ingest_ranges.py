"""How `chaffee ingest` groups the days with videos into runs: no range longer than the backfill
policy allows, every range starting and ending on a day with videos, and a long gap between uploads
split into two runs rather than carried as empty days inside one."""

from __future__ import annotations

from datetime import date, timedelta

from chaffee_assets.defs.partitions import MAX_PARTITIONS_PER_RUN
from chaffee_assets.ingest_runner import RUN_COST_IN_DAYS, DayRange, group_days

START = date(2024, 1, 1)


def days(*offsets: int) -> list[date]:
    return [START + timedelta(days=o) for o in offsets]


def cost(ranges: list[DayRange]) -> int:
    return sum(RUN_COST_IN_DAYS + len(r.days) for r in ranges)


def test_every_day_is_covered_once_by_ranges_that_start_and_end_on_a_video_day():
    wanted = days(0, 2, 3, 9, 30, 31, 33, 70, 71, 140)
    ranges = group_days(wanted)
    covered = [d for r in ranges for d in r.days if d in wanted]
    assert sorted(covered) == wanted  # each once
    assert all(r.first in wanted and r.last in wanted for r in ranges)
    assert all(len(r.days) <= MAX_PARTITIONS_PER_RUN for r in ranges)
    assert ranges == sorted(ranges)


def test_a_gap_longer_than_a_run_costs_splits_the_range_and_a_short_one_does_not():
    short_gap = RUN_COST_IN_DAYS - 1
    assert group_days(days(0, 1 + short_gap)) == [DayRange(*days(0, 1 + short_gap))]
    long_gap = RUN_COST_IN_DAYS + 5
    assert group_days(days(0, 1 + long_gap)) == [
        DayRange(*days(0, 0)),
        DayRange(*days(1 + long_gap, 1 + long_gap)),
    ]


def test_the_grouping_is_no_dearer_than_the_greedy_month_long_ranges():
    # A video every three days for a year: greedy 31-day ranges and the chosen ranges both cover
    # it, the chosen ones at no more cost, and within the span the backfill policy allows.
    wanted = days(*range(0, 365, 3))
    greedy: list[DayRange] = []
    for day in wanted:
        if greedy and (day - greedy[-1].first).days < MAX_PARTITIONS_PER_RUN:
            greedy[-1] = DayRange(greedy[-1].first, day)
        else:
            greedy.append(DayRange(day, day))
    chosen = group_days(wanted)
    assert cost(chosen) <= cost(greedy)
    assert group_days(wanted, max_span_days=7) and all(len(r.days) <= 7 for r in group_days(wanted, 7))


def test_no_days_means_no_runs():
    assert group_days([]) == []
