"""The Textual user interface. Importing it never imports torch: training runs in trainer
processes (`python -m bntui.trainer`) that the app talks to through JSON lines."""
