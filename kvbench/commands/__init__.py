"""The `kvbench` subcommands, apart from the engine they drive: one module each.

    run.py        kvbench run [-m] OVERRIDES...    (the Hydra application around runner.execute)
    listing.py    kvbench list [GROUP...]          (registry and presets of each config group)
    describe.py   kvbench workload describe ...    (what a workload replays, before anything runs)
    profile.py    kvbench profile ...              (step times on a device, for the simulator)
    errors.py     the one error style every subcommand shares

`kvbench report`, `compare` and `appendix` live with the reporting layer (kvbench/reporting/) and
`kvbench reproduce` with its study (kvbench/reproduce/); kvbench/cli.py dispatches to all of them
through `errors.run_command`. Engine modules never import from here.
"""
