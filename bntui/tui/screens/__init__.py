"""The app's screens. The main screen is the workbench; modal screens ask or explain.

Later screens (compare marked runs, BatchNorm diagnostics) go here and read the app's RunViews."""
