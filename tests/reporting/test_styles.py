"""One colour per strategy, the same in every figure and every process."""

import subprocess
import sys

import matplotlib.colors as mcolors

from kvbench.reporting.styles import STRATEGY_COLORS, strategy_color, variant_color


def test_builtin_presets_have_distinct_fixed_colours():
    assert len(set(STRATEGY_COLORS.values())) == len(STRATEGY_COLORS)
    assert strategy_color("paged") == STRATEGY_COLORS["paged"]


def test_other_names_get_a_colour_that_does_not_depend_on_the_process(tmp_path):
    code = "from kvbench.reporting.styles import strategy_color; print(strategy_color('radix_tree'))"
    # From a scratch folder, so the installed package is imported rather than the checkout's folder.
    other_process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert other_process.stdout.strip() == strategy_color("radix_tree")
    assert strategy_color("radix_tree") not in STRATEGY_COLORS.values()


def test_variants_of_a_preset_are_shades_from_light_to_dark():
    shades = [variant_color("paged", i, 3) for i in range(3)]
    lightness = [sum(mcolors.to_rgb(c)) for c in shades]
    assert lightness[0] > lightness[1] > lightness[2]
    assert variant_color("paged", 0, 1) == strategy_color("paged")


def test_memory_colours_never_look_like_a_strategy():
    from kvbench.reporting.styles import MEMORY_COLORS

    def distance(a, b):
        return sum((x - y) ** 2 for x, y in zip(mcolors.to_rgb(a), mcolors.to_rgb(b))) ** 0.5

    for memory in MEMORY_COLORS.values():
        for strategy in STRATEGY_COLORS.values():
            assert distance(memory, strategy) > 0.25, (memory, strategy)


def test_readers_see_the_names_they_know():
    from kvbench.reporting.styles import display_name

    assert display_name("orca_max") == "Orca (Max)" and display_name("paged") == "vLLM (paged)"
    assert display_name("my_strategy") == "my_strategy"


def test_offline_and_gappy_config_values_are_labelled_cleanly():
    from kvbench.reporting.runs import format_value

    assert format_value(1000.0) == "1000" and format_value(float("nan")) == "unset" and format_value(0.5) == "0.5"


def test_every_shipped_strategy_has_a_known_name_and_a_colour_apart_from_memory():
    from kvbench.reporting.styles import FALLBACK_COLORS, MEMORY_COLORS, display_name
    from kvbench.strategies import STRATEGIES

    def distance(a, b):
        return sum((x - y) ** 2 for x, y in zip(mcolors.to_rgb(a), mcolors.to_rgb(b))) ** 0.5

    # Plugins' names get a fallback colour: none of those may look like memory either.
    for color in [*(strategy_color(name) for name in STRATEGIES.names()), *FALLBACK_COLORS]:
        for memory in MEMORY_COLORS.values():
            assert distance(memory, color) > 0.25, (memory, color)
    for name in STRATEGIES.names():
        assert display_name(name) != name, name
    shipped = [strategy_color(name) for name in STRATEGIES.names()]
    assert len(set(shipped)) == len(shipped)


def test_variant_labels_print_config_values_as_written():
    """A key only some runs set is read back as floats: 65536.0 must print as 65536."""
    import pandas as pd

    from kvbench.reporting.series import PRESET_COLUMNS, scenarios

    runs = pd.DataFrame([{**dict.fromkeys(PRESET_COLUMNS, "x"), "strategy": strategy, "cfg.seed": 0,
                          "cfg.strategy.page_bytes": page_bytes}
                         for strategy, page_bytes in [("paged", float("nan")), ("vattention", 65536.0),
                                                      ("vattention", 2097152.0)]])
    (scenario,) = scenarios(runs)
    assert sorted(scenario.labels().values()) == [
        "vAttention, page_bytes=2097152", "vAttention, page_bytes=65536", "vLLM (paged)"]
