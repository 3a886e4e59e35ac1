"""How bntui shows things, the same in the CLI (Rich) and the TUI (Textual): tables, the group
card, numbers with their units, statuses and their colours, counted words, safe text.

Nothing here reads or writes the store's files or draws a screen: the commands and the app call
these functions and print or show what they return, so the two never disagree."""
