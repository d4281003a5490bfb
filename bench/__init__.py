"""The benchmark: its engine (scheduling, pairing, statistics, results), the tool adapters,
the studies and the plots, one package each; cli.py adds its verbs to `testbed`, commands.py
does what they ask."""
