"""The app's widgets: settings panes, plots, the progress line and the run list."""
