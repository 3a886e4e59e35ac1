"""Data, models and the training loop. Never imports textual or rich (a test checks this):
the engine runs in a trainer process that talks to the UI only through events."""
