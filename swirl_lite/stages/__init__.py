"""One module per pipeline stage, each with `run(recipe, run_dir) -> summary`."""
