"""The admin's SVG charts: round ticks, values in their unit, bands and legends."""

import pytest

from expansion.core.charts import (
    Series,
    axis_text,
    bar_chart,
    interval_chart,
    line_chart,
    nice_ticks,
    sparkline,
    value_text,
)


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0, 58_647, [0, 20_000, 40_000, 60_000]),
        (0, 77, [0, 20, 40, 60, 80]),
        (0, 0.0102, [0, 0.005, 0.01, 0.015]),
        (-0.007, 0.004, [-0.01, -0.005, 0, 0.005]),
        (0, 0, [0, 0.25, 0.5, 0.75, 1]),
    ],
)
def test_ticks_are_round_and_cover_the_values(low, high, ticks):
    assert nice_ticks(low, high) == pytest.approx(ticks)


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (58647.0, "money", "$58,647"),
        (150.34, "money", "$150.34"),
        (-96, "money", "−$96.00"),
        (0.8939, "percent", "89.4%"),
        (1.0133, "percent", "101.3%"),
        (1234, "number", "1,234"),
        (0.25, "number", "0.25"),
        (None, "money", "—"),
    ],
)
def test_values_read_in_their_unit(value, kind, text, settings):
    settings.EXPANSION_CURRENCY = "USD"
    assert value_text(value, kind) == text


def test_axis_labels_are_short(settings):
    settings.EXPANSION_CURRENCY = "EUR"
    assert axis_text(40_000, "money", 20_000) == "€40k"
    assert axis_text(0.0075, "percent", 0.0025) == "0.75%"
    assert axis_text(0.4, "percent", 0.2) == "40%"
    assert axis_text(2_500_000, "number", 500_000) == "2.5M"


def test_a_bar_chart_has_an_axis_values_and_labels(settings):
    settings.EXPANSION_CURRENCY = "USD"
    chart = bar_chart([("Jan", 100), ("Feb", 250), ("Mar", 0)], kind="money", title="Revenue")

    frame = chart["frame"]
    assert [t.label for t in frame.ticks] == ["$0", "$100", "$200", "$300"]
    assert [b.text for b in chart["bars"]] == ["$100.00", "$250.00", "$0.00"]
    assert [b.show_label for b in chart["bars"]] == [True, True, True]
    # Heights are to scale from the zero line: 250 of 300 is five sixths of the plot.
    plot = frame.bottom - frame.top
    assert chart["bars"][1].height == pytest.approx(plot * 250 / 300, abs=0.1)
    assert chart["bars"][2].height == 0
    assert chart["values_fit"] is True


def test_a_crowded_bar_chart_thins_its_labels():
    chart = bar_chart([(f"d{i}", i) for i in range(60)], width=640)
    shown = [b.label for b in chart["bars"] if b.show_label]
    assert shown[:3] == ["d0", "d5", "d10"]  # 9.6 px a bar, 46 px a label
    assert chart["values_fit"] is False  # values move to the tooltips


def test_a_line_chart_draws_bands_a_reference_and_a_legend():
    chart = line_chart(
        ["01 Nov", "02 Nov", "03 Nov"],
        [Series("Bonus", [0.01, -0.002, None], low=[-0.01, -0.02, None], high=[0.03, 0.01, None])],
        kind="percent",
        reference=0.0,
    )
    (line,) = chart["lines"]
    assert len(line["dots"]) == 2
    assert line["dots"][0]["text"] == "Bonus, 01 Nov: 1.0%"
    assert line["band"].count(",") == 4  # two upper and two lower points
    assert line["last"] == "−0.2%"
    assert chart["reference"] is not None
    assert [t.label for t in chart["x_ticks"]] == ["01 Nov", "02 Nov", "03 Nov"]


def test_one_day_is_a_dot_with_a_whisker():
    chart = line_chart(["12 Nov"], [Series("B", [0.01], low=[-0.01], high=[0.03])])
    (line,) = chart["lines"]
    assert line["band"] == ""
    assert len(line["whiskers"]) == 1


def test_an_interval_chart_shares_one_axis():
    chart = interval_chart([("A", 0.0102, 0.0061, 0.017), ("B", 0.0075, 0.0041, 0.0138)])
    assert [t.label for t in chart["ticks"]] == ["0.0%", "0.5%", "1.0%", "1.5%", "2.0%"]
    assert chart["rows"][0]["text"] == "1.0% [0.6%, 1.7%]"
    assert chart["rows"][0]["x1"] < chart["rows"][0]["x"] < chart["rows"][0]["x2"]


def test_a_sparkline_needs_two_points():
    assert sparkline([5])["points"] == ""
    line = sparkline([1, 3, 2], width=100, height=20)
    assert line["points"] == "2.0,17.0 50.0,3.0 98.0,10.0"
