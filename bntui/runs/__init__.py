"""Runs as processes: the detached scheduler that takes the launch queue, the trainer process
of one run, SLURM submission, and cancel requests. Everything here talks to the rest of bntui
only through the run store (bntui.store): a run outlives the terminal, the TUI and the
scheduler that started it. Importing this package never imports torch."""
