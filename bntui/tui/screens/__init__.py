"""The app's screens: the main screen is the workbench; compare, group, diagnostics and
landscape read run records from the session (bntui.tui.session); modal screens ask or explain."""
