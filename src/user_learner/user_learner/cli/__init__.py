"""The ``user-rl`` command line: one module per subcommand, each with ``add_arguments`` and ``run``."""
