"""The CLI's sub-command implementations (one module per job; parsing lives in bntui.cli)."""
