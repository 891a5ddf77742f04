"""`kvbench reproduce <paper>`: rerun a paper's experiments in the simulator and set its figures beside ours."""
