"""Payment requests: their states and the rules that move them, free of I/O."""
